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
	if d, ok := s.(cron.ConstantDelaySchedule); ok {
		return every{d: d.Delay}, nil
	}
	return inLocation{s: s, loc: loc}, nil
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
