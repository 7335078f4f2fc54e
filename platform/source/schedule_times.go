package source

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// dueTimes is a schedule's due times: Next returns the first due time
// strictly after t, or the zero time when there is none.
type dueTimes interface {
	Next(t time.Time) time.Time
}

// every is due at each multiple of d since the Unix epoch, so that every
// host computes the same due times whenever it started.
type every struct{ d time.Duration }

func (e every) Next(t time.Time) time.Time {
	epoch := time.Unix(0, 0).In(t.Location())
	n := t.Sub(epoch) / e.d
	due := epoch.Add((n + 1) * e.d)
	for !due.After(t) { // t before the epoch: integer division rounds up
		due = due.Add(e.d)
	}
	return due
}

// inLocation evaluates a cron schedule in loc (its wall clock, its
// daylight saving time changes).
type inLocation struct {
	s   cron.Schedule
	loc *time.Location
}

func (c inLocation) Next(t time.Time) time.Time { return c.s.Next(t.In(c.loc)) }

// ErrBadSchedule is wrapped by the error Every and Cron return for a
// schedule that cannot run.
var ErrBadSchedule = errors.New("source: bad schedule")

// parseCron parses a standard five-field cron expression (minute hour
// day-of-month month day-of-week) or a descriptor (@hourly, @daily,
// @every 1h30m, ...). "@every <d>" is due at the multiples of d since the
// Unix epoch, as Every is (the parser's own counts from the time it is
// asked, which differs between hosts and never fires in Run).
func parseCron(spec string, loc *time.Location) (dueTimes, error) {
	// The parser panics on a time zone prefix with nothing after it.
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		return nil, fmt.Errorf("%w: cron %q: a time zone without an expression", ErrBadSchedule, spec)
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("%w: cron %q: %v", ErrBadSchedule, spec, err)
	}
	switch s := s.(type) {
	case cron.ConstantDelaySchedule:
		return every{d: s.Delay}, nil
	case *cron.SpecSchedule:
		if s.Hour&starBit == 0 {
			if s.Location != time.Local { // a TZ= prefix
				loc = s.Location
			}
			wall := *s
			wall.Location = time.UTC
			return wallClock{s: &wall, loc: loc}, nil
		}
	}
	return inLocation{s: s, loc: loc}, nil
}

// starBit marks a cron field written "*" (robfig/cron's SpecSchedule).
const starBit = 1 << 63

// wallClock evaluates a cron schedule at fixed hours (not "*") on loc's
// wall clock, so that each wall time it names is due once, as cron does
// it: at its first occurrence when the clocks go back (02:30 is not run
// twice), and at the change when the clocks skip it (02:30 on the night
// the clocks go from 02:00 to 03:00 runs at 03:00). A schedule over every
// hour (inLocation) runs each hour that passes instead.
type wallClock struct {
	s   *cron.SpecSchedule // in UTC: wall times
	loc *time.Location
}

func (c wallClock) Next(t time.Time) time.Time {
	w := wallOf(t.In(c.loc))
	// A wall time whose first occurrence is at or before t is passed
	// (t is in the hour the clocks repeated): the next one, up to the
	// minutes of an hour.
	for range 4096 {
		nw := c.s.Next(w)
		if nw.IsZero() {
			return time.Time{}
		}
		if due := c.instant(nw); due.After(t) {
			return due
		}
		w = nw
	}
	return time.Time{}
}

// wallOf is t's wall clock as a UTC time.
func wallOf(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// instant is the first instant whose wall clock in c.loc is w, or, when
// the clocks skip w, the first one after it (the change).
func (c wallClock) instant(w time.Time) time.Time {
	var first time.Time
	for _, around := range []time.Duration{-26 * time.Hour, 0, 26 * time.Hour} {
		_, off := w.Add(around).In(c.loc).Zone()
		cand := w.Add(-time.Duration(off) * time.Second).In(c.loc)
		if wallOf(cand).Equal(w) && (first.IsZero() || cand.Before(first)) {
			first = cand
		}
	}
	if !first.IsZero() {
		return first
	}
	// Skipped: the first second whose wall clock is after w.
	lo, hi := w.Add(-28*time.Hour).Unix(), w.Add(28*time.Hour).Unix() // wall(lo) < w <= wall(hi)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if wallOf(time.Unix(mid, 0).In(c.loc)).Before(w) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return time.Unix(hi, 0).In(c.loc)
}

// maxCatchUpScan bounds the due times Latest walks from a mark to now (a
// minutely schedule whose mark is two years old).
const maxCatchUpScan = 1 << 20

// latest returns the last due time at or before now that is after since
// (any time when since is zero), or the zero time when there is none, and
// how many due times it passed on the way (the one returned included;
// only it when since is zero).
func latest(s dueTimes, since, now time.Time) (time.Time, int64) {
	from := since
	if from.IsZero() {
		// Find a start that has a due time before now, looking back
		// further and further (a yearly schedule needs a year).
		back := time.Hour
		for {
			from = now.Add(-back)
			if n := s.Next(from); !n.IsZero() && !n.After(now) {
				break
			}
			if back > 5*366*24*time.Hour {
				return time.Time{}, 0
			}
			back *= 2
		}
	}
	var last time.Time
	var count int64
	t := from
	for range maxCatchUpScan {
		n := s.Next(t)
		if n.IsZero() || n.After(now) {
			if since.IsZero() && count > 0 {
				count = 1
			}
			return last, count
		}
		last, t = n, n
		count++
	}
	// Too many due times since the mark: the latest is found from now.
	l, _ := latest(s, time.Time{}, now)
	return l, maxCatchUpScan
}
