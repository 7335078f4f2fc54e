package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// Executing one delivery: check its lease (renew it when it waited in the
// hand-over buffer, skip it when it expired there), run the handler
// through recover → timeout → observer → handler, then settle (settle.go).

// process runs one delivery and settles it.
func (p *Pool) process(s *slot, d *queue.Delivery) {
	t := d.Task
	start := p.clock()
	if !p.leaseHeld(d, start) {
		return
	}
	// Extend at about half-life of the lease as the backend granted it
	// (or as renew extended it), on the pool's clock (a lease end more
	// than a Duration before the epoch is read as the epoch, not wrapped).
	extendAt := start + p.cfg.Lease/2
	if !d.LeaseUntil.IsZero() {
		extendAt = max(p.leaseOnClock(d.LeaseUntil, start), 0) - p.cfg.Lease/2
	}

	var (
		octx context.Context
		err  error
		took = task.NotRun
		end  time.Duration
	)
	rt := p.router.lookup(t.Kind)
	rejected := t.Header(task.HeaderRejected)
	maxAttempts := 0
	if rt != nil {
		maxAttempts = rt.maxAttemptsFor(p.cfg.MaxAttempts)
		if rejected == "" {
			rejected = pastLastAttempt(t, maxAttempts)
		}
	}
	if rt == nil || rejected != "" {
		// Dead-lettered without a handler (see settleGuarded).
		s.begin(d, extendAt, 0)
		s.octx = p.hardCtx
		octx = p.obs.Starting(p.hardCtx, t)
		s.octx = octx
	} else {
		// recover → timeout → observer → handler
		d.Last = t.Attempt >= maxAttempts
		timeout := rt.timeoutFor(p.cfg.TaskTimeout)
		deadline := deadlineAfter(start, timeout)
		// A handler that ignores its cancellation keeps its worker, not
		// its task: the lease is extended until one lease period after
		// the timeout, then left to end (see extendLeases).
		s.begin(d, extendAt, deadlineAfter(deadline, p.cfg.Lease))
		ctx := newTaskContext(p.hardCtx, &p.epoch, deadline)
		s.handlerAt, s.ran = start, true
		octx, err = p.call(ctx, s, rt.Handler, t)
		end = p.clock()
		took = end - start
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && p.hardCtx.Err() == nil {
			err = fmt.Errorf("task timed out after %s: %w", timeout, err)
		}
		s.herr = err
		ctx.finish()
	}
	outcome, reason, err := p.settleGuarded(octx, s, d, rt, rejected, err)
	if end == 0 {
		end = p.clock()
	}
	s.finished = true
	p.obs.Finished(octx, t, outcome, err, reason, took)
	s.end()
	p.n.processed.Add(1)
	p.n.lastFinished.Store(int64(end))
	p.n.inFlight.Add(-1)
	p.unreserve(1)
}

// pastLastAttempt returns the dead letter's reason for t when its attempt
// is past maxAttempts, and "" otherwise. Such a delivery comes back after
// the process that held its last attempt ended (killed, or its lease
// lost) before that attempt was settled, or after it was dead-lettered
// but before the backend forgot the delivery: the handler may have run
// and failed for the last time, its dead letter may be stored already. It
// is dead-lettered without running: running it could end a task that is
// dead already in success (two outcomes), and its attempts are used
// either way. A backend that de-duplicates dead letters of one delivery
// (JetStream, within its duplicate window) keeps the first one.
func pastLastAttempt(t *task.Task, maxAttempts int) string {
	if t.Attempt <= maxAttempts {
		return ""
	}
	return fmt.Sprintf("delivered again after its last attempt (attempt %d of %d): the attempt before it was not settled", t.Attempt, maxAttempts)
}

// deadlineAfter is start+timeout on the pool's clock, at most the latest
// time it holds: a timeout meant as "none" (math.MaxInt64) must not wrap
// around to a deadline in the past.
func deadlineAfter(start, timeout time.Duration) time.Duration {
	if timeout > math.MaxInt64-start {
		return math.MaxInt64
	}
	return start + timeout
}

// leaseHeld checks the lease of d, taken from the hand-over buffer at
// start, before it runs: one that ended is skipped (skipExpired), one
// that is nearly over is renewed first. It returns true, with d counted
// in flight, when d may run; false when d was skipped or given back.
func (p *Pool) leaseHeld(d *queue.Delivery, start time.Duration) bool {
	if d.LeaseUntil.IsZero() {
		p.n.inFlight.Add(1)
		return true
	}
	until := p.leaseOnClock(d.LeaseUntil, start)
	if until <= start {
		// The lease ended while the delivery waited in the hand-over
		// buffer: the backend may have given the task to another
		// consumer already, and will deliver it again in any case.
		p.skipExpired(d)
		return false
	}
	if until-start > p.renewBelow {
		p.n.inFlight.Add(1)
		return true
	}
	// Counted until the delivery is in flight or given back, so that
	// Stop, whose ctx ends meanwhile, names the worker.
	defer p.stop.running.begin(renewals, 1)()
	renewed := false
	defer func() {
		if !renewed {
			// The backend's Extend ended the worker's goroutine
			// (runtime.Goexit; the worker is replaced, see worker): d,
			// not begun, goes back unrun instead of being lost with its
			// reservation until its lease ends.
			p.returnUnrun(d)
		}
	}()
	held := p.renew(d)
	renewed = true
	if !held {
		p.skipExpired(d)
		return false
	}
	if p.halted.Load() {
		// Paused or stopped while renewing.
		p.returnUnrun(d)
		return false
	}
	p.n.inFlight.Add(1)
	return true
}

// skipExpired drops d, whose lease ended (or could not be renewed) before
// a worker took it from the hand-over buffer: it is not run, since
// another consumer may hold it now, and not settled; the backend delivers
// it again once the lease has run out, as a new attempt (Stats.Expired).
func (p *Pool) skipExpired(d *queue.Delivery) {
	p.n.expired.Add(1)
	p.log.Warn("lease ended before a worker took the task; skipped (it is delivered again)",
		zap.String("task", d.Task.ID), zap.String("kind", d.Task.Kind), zap.Time("lease_until", d.LeaseUntil))
	p.unreserve(1)
}

// renew extends the lease of d before its handler starts. d waited in the
// hand-over buffer for half its lease or more: the housekeeper would
// extend it only on its next round, which may come after the lease ended
// (and the backend gave the task to another consumer while it runs here).
// It reports false when the lease is lost; on any other error the
// delivery runs on what is left of its lease (the housekeeper tries
// again).
//
// The call is bounded by half the lease and by Stop's ctx (see extendCtx),
// also when it began before Stop.
func (p *Pool) renew(d *queue.Delivery) bool {
	ctx, cancel := context.WithTimeout(p.extendCtx, p.cfg.Lease/2)
	err := p.backendCall(opExtend, d.Task, func() error { return p.backend.Extend(ctx, d, p.cfg.Lease) })
	cancel()
	if err == nil {
		return true
	}
	if backendIs(err, queue.ErrLeaseLost) {
		return false
	}
	p.log.Warn("extend lease before the handler starts", zap.String("task", d.Task.ID), zap.Error(err))
	return true
}

// call runs the observer's Starting and the handler with panics
// recovered as *task.PanicError. It keeps the observer's context on s,
// for a worker that dies in the handler (crashed). When the handler (or
// Starting) calls runtime.Goexit, which takes the worker with it, ctx
// ends on the way out, as when the handler returns: its timer and its
// hook on the pool's context are not held until the deadline.
func (p *Pool) call(ctx *taskContext, s *slot, h task.Handler, t *task.Task) (octx context.Context, err error) {
	octx = ctx
	returned := false
	defer func() {
		if r := recover(); r != nil {
			stack := debug.Stack()
			p.n.panics.Add(1)
			p.log.Error("handler panicked", zap.String("task", t.ID), zap.String("kind", t.Kind),
				zap.Int("attempt", t.Attempt), zap.Any("panic", r), zap.ByteString("stack", stack))
			err = &task.PanicError{Value: r, Stack: stack}
		} else if !returned {
			ctx.finish() // runtime.Goexit: the worker dies (see worker)
		}
	}()
	s.octx = ctx
	octx = p.obs.Starting(ctx, t)
	s.octx = octx
	err = h.Handle(octx, t)
	returned = true
	return octx, err
}
