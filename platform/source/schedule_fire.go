package source

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// maybeFire fires due, the latest of the passed due times after since,
// when it is at most the grace late at now, or when the policy catches up
// missed due times; the others count as missed, except one counted as
// unknown already (given up with its outcome unknown by an earlier Run)
// and those an earlier Run counted (uncounted).
func (s *Schedule) maybeFire(ctx context.Context, emit Emitter, since, due time.Time, passed int64, now time.Time) error {
	skip := now.Sub(due) > s.grace && s.missed != CatchUpOnce
	s.mu.Lock()
	from, missed := s.uncounted(since, due, passed)
	if missed > 0 { // due among them
		if !skip {
			missed-- // due fires
		}
		missed = max(missed-s.countedUnknown(from, due, !skip), 0)
	}
	s.missedRuns += missed
	// Counted: the due times before due, and due unless it fires (a
	// fire that fails leaves it to the next Run).
	counted := due
	if !skip {
		counted = due.Add(-time.Nanosecond)
	}
	s.countedThrough(counted)
	s.mu.Unlock()
	if skip {
		return nil
	}
	if err := s.fire(ctx, emit, due, s.retryUntil(due.Add(s.grace), now)); err != nil {
		return s.stopped(ctx, err)
	}
	return nil
}

// uncounted returns, of the passed due times after since up to due
// (passed of them, see latest), those no Run counted yet: the time after
// which they are, and how many. A Run started again (its supervisor
// restarts it after an error, or its lease came back) sees the due times
// after the same mark as the Run before, which counted them missed (or
// unknown) already. Call it with s.mu held.
func (s *Schedule) uncounted(since, due time.Time, passed int64) (time.Time, int64) {
	c := s.counted
	switch {
	case c.IsZero() || !c.After(since):
		return since, passed
	case !c.Before(due):
		return c, 0
	case since.IsZero():
		return since, passed // due alone, after c
	}
	_, n := latest(s.times, c, due)
	return c, n
}

// countedThrough records that the due times up to t are counted (run,
// missed or unknown). Call it with s.mu held.
func (s *Schedule) countedThrough(t time.Time) {
	if t.After(s.counted) {
		s.counted = t
	}
}

// stopped is Run's result for err: nil when ctx ended (a stop, not a
// failure).
func (s *Schedule) stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// fire enqueues due's task and records the mark, each retried after a
// failure until r's deadline (see retry). Each attempt emits a copy of
// the task built once (a backend may keep the Task it was given, and the
// emitter and backend write to it): every copy has the due time's key,
// so one stored by an attempt whose answer was lost
// (queue.ErrOutcomeUnknown) is not stored twice. When the attempts are
// given up after one whose outcome was unknown, a lookup of the key
// decides: the task found stored, the due time ran; else it counts as
// unknown (givenUp). A failed mark is retried on its own, never by
// emitting again.
func (s *Schedule) fire(ctx context.Context, emit Emitter, due time.Time, r *retry) error {
	t, err := s.task(due)
	if err != nil {
		return err // not retried: build made no task
	}
	if err := s.emitTask(ctx, emit, t, due, r); err != nil {
		return err
	}
	marks := s.ran(due)
	s.attempted(nil)
	if marks == nil {
		return nil
	}
	return s.mark(ctx, marks, due, r, "record last run")
}

// emitTask emits copies of due's task t until one is stored (or found
// stored, see fire), retried until r's deadline.
func (s *Schedule) emitTask(ctx context.Context, emit Emitter, t *task.Task, due time.Time, r *retry) error {
	attempt := withAttemptTimeout(ctx, s.attemptTimeout(due))
	unknown, q := false, "" // an attempt's outcome was unknown; the queue its copy went to
	for {
		c := t.Clone()
		pctx, end := StartPoll(attempt, s.name)
		err := emit.Emit(pctx, c)
		end(err)
		if err == nil {
			return nil
		}
		if errors.Is(err, queue.ErrOutcomeUnknown) {
			unknown, q = true, c.Queue
		}
		err = fmt.Errorf("schedule %q: emit %s: %w", s.name, due.Format(time.RFC3339), err)
		if !r.again(ctx, err) {
			if unknown {
				return s.givenUp(ctx, emit, due, q, err)
			}
			return err
		}
	}
}

// task builds due's task and sets its key and headers.
func (s *Schedule) task(due time.Time) (*task.Task, error) {
	t := &task.Task{Kind: s.kind}
	if s.build != nil {
		var err error
		if t, err = s.build(due); err != nil {
			return nil, fmt.Errorf("schedule %q: task for %s: %w", s.name, due.Format(time.RFC3339), err)
		}
		if t == nil {
			return nil, fmt.Errorf("schedule %q: task for %s: build returned nil", s.name, due.Format(time.RFC3339))
		}
	}
	t.Key = s.Key(due)
	t.SetHeader(HeaderSchedule, s.name)
	t.SetHeader(HeaderScheduledAt, due.UTC().Format(time.RFC3339Nano))
	return t, nil
}

// mark records due as the schedule's last run, retried after a failure
// until r's deadline (SetLastRun moves a mark to due again harmlessly).
// Each attempt is made even when ctx ended (the lease lost, the host
// stopping) once the task is enqueued, else the next host catching up
// would run the due time again; the back-off between attempts ends with
// ctx.
func (s *Schedule) mark(ctx context.Context, marks Marks, due time.Time, r *retry, what string) error {
	for {
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
		err := marks.SetLastRun(mctx, s.name, due)
		cancel()
		if err == nil {
			s.attempted(nil)
			return nil
		}
		err = fmt.Errorf("schedule %q: %s %s: %w", s.name, what, due.Format(time.RFC3339), err)
		if !r.again(ctx, err) {
			return err
		}
	}
}

// lastRun reads the schedule's mark, retried after a failure until r's
// deadline.
func (s *Schedule) lastRun(ctx context.Context, marks Marks, r *retry) (time.Time, error) {
	for {
		last, err := marks.LastRun(ctx, s.name)
		if err == nil {
			s.attempted(nil)
			return last, nil
		}
		err = fmt.Errorf("schedule %q: read last run: %w", s.name, err)
		if !r.again(ctx, err) {
			return time.Time{}, err
		}
	}
}

// retry paces the attempts at one step of a schedule (a due time's emit
// and mark, or the read of the marks at start) after failures: with
// back-off on the schedule's clock, until its deadline.
type retry struct {
	s        *Schedule
	deadline time.Time
	bo       *backoff.ExponentialBackOff // nil until the first failure
}

// retryUntil returns the retry of a step that may take until deadline
// (a due time's: the due time plus the grace). A step begun at now,
// after it (a missed due time caught up), has a grace from now.
func (s *Schedule) retryUntil(deadline, now time.Time) *retry {
	if now.After(deadline) {
		deadline = now.Add(s.grace)
	}
	return &retry{s: s, deadline: deadline}
}

// again reports whether the step that failed with err is tried again,
// after waiting its back-off: not when err is one that retrying cannot
// fix (permanent), ctx ended, or the deadline has come (the last attempt
// is made at the deadline).
func (r *retry) again(ctx context.Context, err error) bool {
	r.s.attempted(err)
	if ctx.Err() != nil || permanent(err) {
		return false
	}
	now := r.s.clock.Now()
	if !now.Before(r.deadline) {
		return false
	}
	if r.bo == nil {
		r.bo = retryBackoff()
	}
	if r.s.clock.Sleep(ctx, now.Add(min(r.bo.NextBackOff(), r.deadline.Sub(now)))) != nil {
		return false
	}
	r.s.mu.Lock()
	r.s.retries++
	r.s.mu.Unlock()
	return true
}

// retryBackoff is the back-off between a schedule's attempts at one
// step: 100ms doubling up to 5s, spread by ±20%, so that a server back
// after a short outage (a NATS leader election, a restarted server) is
// tried again within seconds.
func retryBackoff() *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     100 * time.Millisecond,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         5 * time.Second,
	}
	b.Reset()
	return b
}

// permanent reports whether err is one that retrying the same task cannot
// fix: marked task.Permanent, or a task the backend refuses
// (queue.ErrInvalidTask, queue.ErrTooLarge), or a backend that is closed
// (queue.ErrClosed: the host is stopping).
func permanent(err error) bool {
	return task.IsPermanent(err) || errors.Is(err, queue.ErrInvalidTask) ||
		errors.Is(err, queue.ErrTooLarge) || errors.Is(err, queue.ErrClosed)
}

// attempted records the result of an attempt at an emit or a mark: a
// failure's error shows in the schedule's details until an attempt
// succeeds.
func (s *Schedule) attempted(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.lastErr = ""
	} else {
		s.lastErr = err.Error()
	}
}
