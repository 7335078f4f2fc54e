package source

import (
	"context"
	"fmt"
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
	// again, by its Marks (a host ran it), or by an emit of it again that
	// succeeds (CatchUpOnce: a copy dropped by its key when the task was
	// stored within the backend's de-duplication window).
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
	found, why := s.lookUp(ctx, emit, q, due)
	if found {
		return nil
	}
	s.mu.Lock()
	if !s.unknown.due.Equal(due) {
		s.unknownRuns++
	}
	s.unknown = unknownDue{due: due, queue: q}
	s.countedThrough(due)
	s.mu.Unlock()
	return fmt.Errorf("%w; its task may have been stored (%s): the due time counts as unknown, not missed", err, why)
}

// lookUp reports whether due's task is stored on queue q, as a lookup of
// its key through emit finds it (emit must be a queue.TaskFinder), or
// why it does not know. A task found is stored, even when a later part
// of the lookup failed. A lookup that finds nothing does not say the task
// is not stored: a publish cut in flight may still be stored after it.
// The lookup is bounded by the attempt timeout; it is made even when ctx
// ended (a stop with an emit given up), bounded by markTimeout then, so
// that a task found stored is marked.
func (s *Schedule) lookUp(ctx context.Context, emit Emitter, q string, due time.Time) (bool, string) {
	f, ok := emit.(queue.TaskFinder)
	if !ok {
		return false, "the emitter cannot look its key up"
	}
	if q == "" {
		return false, "its queue is not known"
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
		return true, ""
	case err != nil:
		return false, fmt.Sprintf("the lookup of its key failed: %v", err)
	default:
		return false, "a lookup of its key did not find it"
	}
}

// ran records that due's task is stored: due is the last due time this
// schedule emitted, and a due time counted as unknown at or before it is
// settled. It returns the schedule's marks.
func (s *Schedule) ran(due time.Time) Marks {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = due
	s.settled(due, true)
	s.countedThrough(due)
	return s.marks
}

// settled forgets the unknown due time when it is at or before due (the
// schedule is past it): when it is due and stored, it leaves the Unknown
// count; an earlier one stays counted. Call it with s.mu held.
func (s *Schedule) settled(due time.Time, stored bool) {
	u := s.unknown.due
	if u.IsZero() || u.After(due) {
		return
	}
	if u.Equal(due) && stored {
		s.unknownRuns--
	}
	s.unknown = unknownDue{}
}

// settleUnknown settles, at the start of a Run, a due time an earlier Run
// gave up with its outcome unknown, given last, the due time the marks
// say ran last: the marks say it ran (last is it), or a lookup of its key
// finds it stored (then it is the last due time this schedule emitted,
// written back to the marks by Run). It stays unknown otherwise.
func (s *Schedule) settleUnknown(ctx context.Context, emit Emitter, last time.Time) {
	s.mu.Lock()
	u := s.unknown
	s.mu.Unlock()
	if u.due.IsZero() {
		return
	}
	if !last.Before(u.due) {
		s.mu.Lock()
		s.settled(last, true)
		s.mu.Unlock()
		return
	}
	if found, _ := s.lookUp(ctx, emit, u.queue, u.due); found {
		s.ran(u.due)
	}
}

// countedUnknown reports whether the unknown due time is among the due
// times after since up to due, the latest of them (all of them counted
// when since is not zero, due alone otherwise; see latest): it counts as
// unknown already, not as missed. Call it with s.mu held.
func (s *Schedule) countedUnknown(since, due time.Time) bool {
	u := s.unknown.due
	if u.IsZero() {
		return false
	}
	if since.IsZero() {
		return u.Equal(due)
	}
	return u.After(since) && !u.After(due)
}
