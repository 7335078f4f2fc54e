package source

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/plba/plba/platform/queue"
)

// ScheduleDetails is a schedule's status (its component's details).
type ScheduleDetails struct {
	Schedule string    `json:"schedule"`
	Location string    `json:"location"`
	Next     time.Time `json:"next,omitzero"`
	// Last is the last due time whose task this schedule knows stored:
	// its emit succeeded, or a lookup of its key found the task.
	Last time.Time `json:"last,omitzero"`
	// Missed counts the due times that passed without a run of their own
	// (CatchUpOnce runs only the latest of them). A due time that passed
	// before the start counts only when the schedule knows it did not run
	// (from its Marks), or, without Marks, when it is not run at start. A
	// due time counted in Unknown is not counted here. Each counts once:
	// a Run started again (after an error, or its lease came back) does
	// not count again those an earlier Run counted.
	Missed int64 `json:"missed"`
	// Unknown counts the due times whose task may or may not have been
	// stored: their emit was given up (see Run) after an attempt whose
	// outcome is unknown (queue.ErrOutcomeUnknown: a publish whose answer
	// was lost), and a lookup of the due time's key did not find the task
	// (or could not be made). A due time leaves the count when it is
	// found stored after all: by a lookup when the schedule's Run starts
	// again (those a quarter of the grace allows), by its Marks (a host ran it), or by an emit of it again that
	// succeeds (CatchUpOnce: a copy dropped by its key when the task was
	// stored within the backend's de-duplication window). Each due time
	// counted is kept until it is settled, whatever due times run after
	// it, up to the latest 32 (maxUnknown): an earlier one stays counted,
	// no longer looked up.
	Unknown int64 `json:"unknown"`
	// Retries counts the attempts made again after a failed one (an
	// emit, a mark, the read of the marks; see Run).
	Retries int64 `json:"retries"`
	// LastError is the error of the last failed attempt, until an
	// attempt succeeds: while it shows, the schedule is retrying (or its
	// Run ended with it, see the source's last_error).
	LastError string `json:"last_error,omitempty"`
	// AttemptTimeout bounds each attempt at the next due time's emit
	// (e.g. "2s"; see Run and WithAttemptTimeout): an attempt without an
	// answer by then is cut and retried.
	AttemptTimeout string `json:"attempt_timeout,omitempty"`
}

// Details returns the schedule's expression, time zone, next due time,
// the last due time it emitted and its counts.
func (s *Schedule) Details() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := ScheduleDetails{Schedule: s.spec, Location: s.loc.String(), Next: s.next, Last: s.last, Missed: s.missedRuns,
		Unknown: s.unknownRuns, Retries: s.retries, LastError: s.lastErr}
	if s.nextTry > 0 {
		d.AttemptTimeout = s.nextTry.String()
	}
	return d
}

// maxUnknown caps the unsettled unknown due times a schedule keeps to look
// up again: past it, the earliest is no longer looked up (it stays
// counted in ScheduleDetails.Unknown, never settled).
const maxUnknown = 32

// unknownDue is a due time whose emit was given up with its outcome
// unknown, and the queue its task went to (to look its key up).
type unknownDue struct {
	due   time.Time
	queue string
}

// givenUp ends due's emit, given up with err after an attempt whose
// outcome was unknown, the task sent to queue q. It returns nil when a
// lookup of due's key finds the task (it is stored: the due time ran).
// Otherwise due counts as unknown (once, whichever Run gave it up), is
// kept to be settled later (settleUnknown), and the error says so.
func (s *Schedule) givenUp(ctx context.Context, emit Emitter, due time.Time, q string, err error) error {
	found, lerr := s.lookUp(ctx, emit, q, due)
	if found {
		return nil
	}
	why := "a lookup of its key did not find it"
	if lerr != nil {
		why = lerr.Error()
	}
	s.mu.Lock()
	s.keepUnknown(unknownDue{due: due, queue: q})
	s.countedThrough(due)
	s.mu.Unlock()
	return fmt.Errorf("%w; its task may have been stored (%s): the due time counts as unknown, not missed", err, why)
}

// keepUnknown adds u to the unknown due times, counted once: a due time
// given up again is kept once. Past maxUnknown the earliest is dropped,
// still counted. Call it with s.mu held.
func (s *Schedule) keepUnknown(u unknownDue) {
	i, found := s.unknownAt(u.due)
	if found {
		s.unknown[i] = u
		return
	}
	s.unknownRuns++
	s.unknown = slices.Insert(s.unknown, i, u)
	if len(s.unknown) > maxUnknown {
		s.unknown = slices.Delete(s.unknown, 0, len(s.unknown)-maxUnknown)
	}
}

// lookUp reports whether due's task is stored on queue q, as a lookup of
// its key through emit finds it (emit must be a queue.TaskFinder), or,
// with an error, why it does not know (nil: the lookup did not find it).
// A task found is stored, even when a later part of the lookup failed. A
// lookup that finds nothing does not say the task is not stored: a
// publish cut in flight may still be stored after it. The lookup is
// bounded by the attempt timeout; it is made even when ctx ended (a stop
// with an emit given up), bounded by markTimeout then, so that a task
// found stored is marked.
func (s *Schedule) lookUp(ctx context.Context, emit Emitter, q string, due time.Time) (bool, error) {
	f, ok := emit.(queue.TaskFinder)
	if !ok {
		return false, errors.New("the emitter cannot look its key up")
	}
	if q == "" {
		return false, errors.New("its queue is not known")
	}
	d := s.attemptTimeout(due)
	if ctx.Err() != nil {
		ctx, d = context.WithoutCancel(ctx), min(d, markTimeout)
	}
	lctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	found, err := f.FindTasks(lctx, q, queue.TaskLookup{Key: s.Key(due)})
	switch {
	case len(found.Found) > 0:
		// Found, even by a lookup that failed after (a backend's work
		// stream searched, its dead letters not).
		return true, nil
	case err != nil:
		return false, fmt.Errorf("the lookup of its key failed: %w", err)
	default:
		return false, nil
	}
}

// ran records that due's task is stored: due is the last due time this
// schedule emitted unless a later one is, and due, when it counted as
// unknown, is settled. It returns the schedule's marks.
func (s *Schedule) ran(due time.Time) Marks {
	s.mu.Lock()
	defer s.mu.Unlock()
	if due.After(s.last) {
		s.last = due
	}
	s.settled(due)
	s.countedThrough(due)
	return s.marks
}

// settled settles due when it counts as unknown: it is stored, it leaves
// the unknown due times and their count. Call it with s.mu held.
func (s *Schedule) settled(due time.Time) {
	i, found := s.unknownAt(due)
	if !found {
		return
	}
	s.unknown = slices.Delete(s.unknown, i, i+1)
	s.unknownRuns--
}

// settleUnknown settles, at the start of a Run, the due times earlier
// Runs gave up with their outcome unknown, given last, the due time the
// marks say ran last: the marks say one ran (last is it), or a lookup of
// its key finds it stored (then, when it is the latest, it is the last
// due time this schedule emitted, written back to the marks by Run). The
// others stay unknown. The lookups stop at the first that fails (the
// backend does not answer), and none starts a quarter of the grace after
// the first (on the schedule's clock; a lookup is bounded by its attempt
// timeout): a due time that passed shortly before the start still fires
// within its grace. Those left are looked up at the next start.
func (s *Schedule) settleUnknown(ctx context.Context, emit Emitter, last time.Time) {
	s.mu.Lock()
	us := slices.Clone(s.unknown)
	s.mu.Unlock()
	until := s.clock.Now().Add(s.grace / 4)
	for _, u := range us {
		if u.due.Equal(last) {
			s.mu.Lock()
			s.settled(last)
			s.mu.Unlock()
			continue
		}
		if u.queue == "" {
			continue // nowhere to look it up
		}
		if !s.clock.Now().Before(until) {
			continue // looked up at the next start
		}
		found, err := s.lookUp(ctx, emit, u.queue, u.due)
		if found {
			s.ran(u.due)
			continue
		}
		if err != nil || ctx.Err() != nil {
			return
		}
	}
}

// countedUnknown returns how many unknown due times are among the due
// times after since up to due, the latest of them (all of them counted
// when since is not zero, due alone otherwise; see latest), due left out
// when it fires: they count as unknown already, not as missed. Call it
// with s.mu held.
func (s *Schedule) countedUnknown(since, due time.Time, fires bool) int64 {
	var n int64
	for _, u := range s.unknown {
		in := u.due.Equal(due)
		if !since.IsZero() {
			in = u.due.After(since) && !u.due.After(due)
		}
		if in && !(fires && u.due.Equal(due)) {
			n++
		}
	}
	return n
}

// unknownAt finds due in s.unknown (kept in due order): its index, or
// where it would go. s.mu held.
func (s *Schedule) unknownAt(due time.Time) (int, bool) {
	return slices.BinarySearchFunc(s.unknown, due, func(k unknownDue, t time.Time) int { return k.due.Compare(t) })
}
