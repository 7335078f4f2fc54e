package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// process runs one delivery and settles it.
func (p *Pool) process(s *slot, d *queue.Delivery) {
	t := d.Task
	start := p.clock()
	renewed := false
	if !d.LeaseUntil.IsZero() {
		now := p.epoch.Add(start)
		if !now.Before(d.LeaseUntil) {
			// The lease ended while the delivery waited in the hand-over
			// buffer: the backend may have given the task to another
			// consumer already, and will deliver it again in any case.
			p.skipExpired(d)
			return
		}
		if d.LeaseUntil.Sub(now) <= p.renewBelow {
			// Counted until the delivery is in flight or given back, so
			// that Stop, whose ctx ends meanwhile, names the worker.
			p.renewing.Add(1)
			if !p.renew(d) {
				p.renewing.Add(-1)
				p.skipExpired(d)
				return
			}
			if p.halted.Load() {
				// Paused or stopped while renewing.
				p.returnUnrun(d)
				p.renewing.Add(-1)
				return
			}
			renewed = true
		}
	}
	p.inFlight.Add(1)
	if renewed {
		p.renewing.Add(-1)
	}
	// Extend at about half-life of the lease as the backend granted it
	// (or as renew extended it).
	extendAt := p.epoch.Add(start + p.cfg.Lease/2)
	if !d.LeaseUntil.IsZero() {
		extendAt = d.LeaseUntil.Add(-p.cfg.Lease / 2)
	}
	s.begin(d, extendAt)

	var (
		outcome task.Outcome
		reason  string
		err     error
		octx    context.Context
		took    time.Duration
		end     time.Duration
	)
	rt := p.router.lookup(t.Kind)
	if rt == nil {
		octx = p.obs.Starting(p.hardCtx, t)
	} else {
		// recover → timeout → observer → handler
		timeout := rt.timeoutFor(p.cfg.TaskTimeout)
		ctx := newTaskContext(p.hardCtx, p.epoch.Add(start+timeout))
		octx, err = p.call(ctx, rt.Handler, t)
		end = p.clock()
		took = end - start
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && p.hardCtx.Err() == nil {
			err = fmt.Errorf("task timed out after %s: %w", timeout, err)
		}
		ctx.finish()
	}
	outcome, reason, err = p.settleGuarded(octx, s, d, rt, err)
	if end == 0 {
		end = p.clock()
	}
	p.obs.Finished(octx, t, outcome, err, reason, took)
	s.end()
	p.processed.Add(1)
	p.lastFinished.Store(int64(end))
	p.inFlight.Add(-1)
	p.unreserve(1)
}

// skipExpired drops d, whose lease ended (or could not be renewed) before
// a worker took it from the hand-over buffer: it is not run, since
// another consumer may hold it now, and not settled; the backend delivers
// it again once the lease has run out, as a new attempt (Stats.Expired).
func (p *Pool) skipExpired(d *queue.Delivery) {
	p.expired.Add(1)
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
// also when it began before Stop; the caller counts it in p.renewing.
func (p *Pool) renew(d *queue.Delivery) bool {
	ctx, cancel := context.WithTimeout(p.extendCtx, p.cfg.Lease/2)
	err := p.backend.Extend(ctx, d, p.cfg.Lease)
	cancel()
	if err == nil {
		return true
	}
	if errors.Is(err, queue.ErrLeaseLost) {
		return false
	}
	p.log.Warn("extend lease before the handler starts", zap.String("task", d.Task.ID), zap.Error(err))
	return true
}

// call runs the observer's Starting and the handler with panics
// recovered as *task.PanicError.
func (p *Pool) call(ctx context.Context, h task.Handler, t *task.Task) (octx context.Context, err error) {
	octx = ctx
	defer func() {
		if r := recover(); r != nil {
			stack := debug.Stack()
			p.panics.Add(1)
			p.log.Error("handler panicked", zap.String("task", t.ID), zap.String("kind", t.Kind),
				zap.Int("attempt", t.Attempt), zap.Any("panic", r), zap.ByteString("stack", stack))
			err = &task.PanicError{Value: r, Stack: stack}
		}
	}()
	octx = p.obs.Starting(ctx, t)
	return octx, h.Handle(octx, t)
}

// settleGuarded settles d (dead letter when rt is nil: the kind has no
// route) with a panic during settlement recovered: an error whose methods
// panic past errorText, a broken backend. The delivery then fails like a
// handler error (counted: retried with back-off, dead-lettered at the last
// attempt); leaving the panic to the worker would give the task back
// without counting the attempt, and run it again at once, forever.
func (p *Pool) settleGuarded(ctx context.Context, s *slot, d *queue.Delivery, rt *route, err error) (o task.Outcome, reason string, rerr error) {
	defer func() {
		if r := recover(); r != nil {
			o, reason, rerr = p.settlePanicked(ctx, s, d, rt, r)
		}
	}()
	if rt == nil {
		reason = "no handler for kind " + d.Task.Kind
		return p.deadLetter(ctx, s, d, reason), reason, nil
	}
	return p.settle(ctx, s, d, rt, err)
}

// settlePanicked handles a panic recovered while settling d.
func (p *Pool) settlePanicked(ctx context.Context, s *slot, d *queue.Delivery, rt *route, r any) (task.Outcome, string, error) {
	t := d.Task
	err := fmt.Errorf("panic while settling the task: %v", r)
	p.log.Error("panic while settling a task", zap.String("task", t.ID), zap.String("kind", t.Kind),
		zap.Int("attempt", t.Attempt), zap.Any("panic", r), zap.Stack("stack"))
	if !s.unsettled(d) {
		// The panic came during the backend's settlement call: whether it
		// took effect is unknown. If not, the lease runs out and the task
		// is delivered again, as a new attempt.
		p.setLastError(err)
		return task.Returned, "", err
	}
	return p.fail(ctx, s, d, rt, err)
}

// settle turns a handler's result into the delivery's settlement and
// returns the outcome, the dead-letter reason and the error to report.
func (p *Pool) settle(ctx context.Context, s *slot, d *queue.Delivery, rt *route, err error) (task.Outcome, string, error) {
	t := d.Task
	if err == nil {
		if cerr := p.complete(ctx, t, task.Succeeded, ""); cerr != nil {
			err = &completionError{err: cerr}
		} else {
			if !s.claim() {
				return task.Returned, "", nil
			}
			if aerr := p.backend.Ack(context.Background(), d); aerr != nil {
				p.settleFailed("ack", t, aerr)
			}
			p.succeeded.Add(1)
			return task.Succeeded, "", nil
		}
	}
	if p.hardCtx.Err() != nil {
		// Stopping: the handler was cancelled; the task goes back as it is.
		if s.claim() {
			p.giveBack(p.settleParent(), d)
		}
		return task.Returned, "", printable(err)
	}
	return p.fail(ctx, s, d, rt, err)
}

// fail settles d after a failed attempt: dead letter when err is
// permanent or the attempt was the last the route (rt; nil: the pool's
// setting) allows, else retry after the back-off or the delay err asks
// for. It returns the outcome, the dead-letter reason and err in a form
// that can be printed.
func (p *Pool) fail(ctx context.Context, s *slot, d *queue.Delivery, rt *route, err error) (task.Outcome, string, error) {
	t := d.Task
	// Examine err before counting anything: its methods may panic (see
	// settleGuarded, which then fails the delivery afresh).
	msg, ok := errorText(err)
	report := err
	if !ok {
		report = &unprintableError{msg: msg, err: err}
	}
	permanent := task.IsPermanent(err)
	delay, ok := task.RetryDelay(err)
	if !ok {
		delay = p.cfg.Backoff.Delay(t.Attempt)
	}
	p.failed.Add(1)
	p.lastErr.Store(&msg)
	if permanent {
		reason := permanentReason(err)
		return p.deadLetter(ctx, s, d, reason), reason, report
	}
	maxAttempts := p.cfg.MaxAttempts
	if rt != nil {
		maxAttempts = rt.maxAttemptsFor(p.cfg.MaxAttempts)
	}
	if t.Attempt >= maxAttempts {
		var ce *completionError
		if errors.As(err, &ce) {
			// The handler succeeded; only telling the source failed, every
			// time. The source must not hear "dead-lettered" for work that
			// was done (it would file the message as failed): the task is
			// dead-lettered without a completion, and the source, which
			// has not heard of it, emits it again in its own time.
			reason := "handled, but its source could not be told: " + msg
			return p.deadLetterUntold(s, d, reason), reason, report
		}
		return p.deadLetter(ctx, s, d, msg), msg, report
	}
	if !s.claim() {
		return task.Returned, "", report
	}
	sctx, cancel := p.settleCtx()
	rerr := p.backend.Retry(sctx, d, time.Now().Add(delay))
	cancel()
	if rerr != nil {
		p.settleFailed("retry", t, rerr)
	}
	p.retried.Add(1)
	p.log.Debug("task failed, retrying", zap.String("task", t.ID), zap.String("kind", t.Kind),
		zap.Int("attempt", t.Attempt), zap.Duration("delay", delay), zap.String("error", msg))
	return task.Retried, "", report
}

// permanentReason is the dead-letter reason of the permanent error err:
// the text of the error it wraps.
func permanentReason(err error) string {
	var pe *task.PermanentError
	if errors.As(err, &pe) && pe != nil && pe.Err != nil {
		reason, _ := errorText(pe.Err)
		return reason
	}
	return (&task.PermanentError{}).Error()
}

// errorText returns err.Error() and true, or, when Error panics (a nil
// pointer of an error type returned as a non-nil error, a PermanentError
// made without its Err), a description of that panic and false. What a
// handler returns is never trusted to print: a panic while settling would
// otherwise escape the handler's recover.
func errorText(err error) (msg string, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			msg, ok = fmt.Sprintf("<error %T panicked in Error(): %v>", err, r), false
		}
	}()
	return err.Error(), true
}

// printable returns err, or an unprintableError in its place when its
// Error method panics.
func printable(err error) error {
	if err == nil {
		return nil
	}
	if msg, ok := errorText(err); !ok {
		return &unprintableError{msg: msg, err: err}
	}
	return err
}

// unprintableError stands in for an error whose Error method panics, so
// that what the pool reports (to the observer, in logs) can be printed.
// It unwraps to the original.
type unprintableError struct {
	msg string
	err error
}

func (e *unprintableError) Error() string { return e.msg }
func (e *unprintableError) Unwrap() error { return e.err }

// completionError is a failed completion after the handler succeeded.
type completionError struct{ err error }

func (e *completionError) Error() string { return "completion: " + e.err.Error() }
func (e *completionError) Unwrap() error { return e.err }

// deadLetter reports the completion and dead-letters d with reason. A
// failed completion is logged and appended to the reason (re-driving the
// dead letter makes it again).
func (p *Pool) deadLetter(ctx context.Context, s *slot, d *queue.Delivery, reason string) task.Outcome {
	t := d.Task
	if cerr := p.complete(ctx, t, task.DeadLettered, reason); cerr != nil {
		msg, _ := errorText(cerr)
		p.log.Error("completion of dead-lettered task failed", zap.String("task", t.ID), zap.String("error", msg))
		reason += " (completion failed: " + msg + ")"
	}
	return p.deadLetterUntold(s, d, reason)
}

// deadLetterUntold dead-letters d with reason without telling its source.
func (p *Pool) deadLetterUntold(s *slot, d *queue.Delivery, reason string) task.Outcome {
	t := d.Task
	if !s.claim() {
		return task.Returned
	}
	sctx, cancel := p.settleCtx()
	derr := p.backend.DeadLetter(sctx, d, reason)
	cancel()
	if derr != nil {
		p.settleFailed("dead-letter", t, derr)
	}
	p.dead.Add(1)
	p.log.Warn("task dead-lettered", zap.String("task", t.ID), zap.String("kind", t.Kind),
		zap.Int("attempt", t.Attempt), zap.String("reason", reason))
	return task.DeadLettered
}

// complete reports a final outcome to the task's source, if it asked.
func (p *Pool) complete(ctx context.Context, t *task.Task, o task.Outcome, reason string) error {
	if t.Header(task.HeaderCompletion) == "" {
		return nil
	}
	return p.completeGuarded(ctx, t, o, reason)
}

// completeGuarded calls the source's Complete; a panic in it is a failed
// completion.
func (p *Pool) completeGuarded(ctx context.Context, t *task.Task, o task.Outcome, reason string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("completion panicked", zap.String("task", t.ID), zap.String("kind", t.Kind),
				zap.Any("panic", r), zap.Stack("stack"))
			err = fmt.Errorf("completion panicked: %v", r)
		}
	}()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.TaskTimeout)
	defer cancel()
	return p.comps.Complete(cctx, t, o, reason)
}

func (p *Pool) settleFailed(op string, t *task.Task, err error) {
	p.setLastError(fmt.Errorf("%s task %s: %w", op, t.ID, err))
	if errors.Is(err, queue.ErrLeaseLost) {
		p.log.Warn("lease lost before settlement; the task will be delivered again",
			zap.String("op", op), zap.String("task", t.ID), zap.String("kind", t.Kind))
		return
	}
	p.log.Error("settle task", zap.String("op", op), zap.String("task", t.ID), zap.Error(err))
}

// housekeep extends the leases of long-running handlers at about
// half-life and runs the stall check. It runs until the workers are done,
// so handlers finishing during the drain keep their leases.
func (p *Pool) housekeep() {
	defer p.hk.Done()
	extendEvery := p.extendEvery
	checkEvery := min(max(p.cfg.StallAfter/2, 10*time.Millisecond), 30*time.Second)
	ext := time.NewTicker(extendEvery)
	defer ext.Stop()
	chk := time.NewTicker(checkEvery)
	defer chk.Stop()
	for {
		select {
		case <-p.hkStop:
			return
		case now := <-ext.C:
			p.extendLeases(now)
		case <-chk.C:
			ctx, cancel := context.WithTimeout(p.extendCtx, checkEvery)
			_ = p.Check(ctx)
			cancel()
		}
	}
}

func (p *Pool) extendLeases(now time.Time) {
	p.mu.Lock()
	slots := append([]*slot(nil), p.slots...)
	p.mu.Unlock()
	for _, s := range slots {
		s.mu.Lock()
		d := s.d
		due := d != nil && !s.settled && !now.Before(s.extendAt)
		if due {
			s.extendAt = now.Add(p.cfg.Lease / 2)
		}
		s.mu.Unlock()
		if !due {
			continue
		}
		// Bounded by Stop's ctx too (see extendCtx), and reported by
		// Stop while it runs past it.
		p.extending.Store(true)
		ctx, cancel := context.WithTimeout(p.extendCtx, p.cfg.Lease/2)
		err := p.backend.Extend(ctx, d, p.cfg.Lease)
		cancel()
		p.extending.Store(false)
		if err != nil && s.unsettled(d) {
			// (Settled meanwhile: the ack or retry won the race, and the
			// lease is no longer needed.)
			p.log.Warn("extend lease of running task", zap.String("task", d.Task.ID), zap.Error(err))
		}
	}
}

// Check is the stalled-pool health check: it returns an error wrapping
// ErrStalled (and marks the component degraded) when work waits (ready in
// the queue, or leased and waiting in the pool's hand-over buffer) but the
// pool finished nothing for longer than StallAfter, counting
// from its start. A paused or stopped pool is not stalled. When the stall
// clears, the component returns to running.
func (p *Pool) Check(ctx context.Context) error {
	p.mu.Lock()
	idle := p.paused || p.state != stateRunning
	p.mu.Unlock()
	if idle {
		p.clearStall()
		return nil
	}
	last := max(p.lastFinished.Load(), p.started.Load())
	quiet := p.clock() - time.Duration(last)
	if quiet <= p.cfg.StallAfter {
		p.clearStall()
		return nil
	}
	st, err := p.backend.Stats(ctx, p.queue)
	if err != nil {
		return fmt.Errorf("worker: pool %q: stats: %w", p.queue, err)
	}
	buffered := int64(len(p.work))
	if st.Ready+buffered == 0 {
		p.clearStall()
		return nil
	}
	err = fmt.Errorf("%w: %d tasks wait (%d ready in queue %q, %d leased for a busy worker) but nothing finished for %s (in flight %d)",
		ErrStalled, st.Ready+buffered, st.Ready, p.queue, buffered, quiet.Round(time.Millisecond), p.inFlight.Load())
	if !p.stalled.Swap(true) {
		p.log.Warn("pool stalled", zap.Error(err))
	}
	p.comp.Set(lifecycle.Degraded, err)
	return err
}

func (p *Pool) clearStall() {
	if p.stalled.Swap(false) {
		p.mu.Lock()
		running := p.state == stateRunning
		p.mu.Unlock()
		if running {
			p.comp.Set(lifecycle.Running, nil)
		}
	}
}

// stopGrace is how long Stop waits, once its ctx ended, for cancelled
// handlers to return, and then bounds the give-backs of those that did
// not.
const stopGrace = 50 * time.Millisecond

// Stop drains the pool: it stops leasing, gives the deliveries waiting in
// the hand-over buffer back at once, lets in-flight handlers finish for up
// to DrainTimeout (or until ctx ends, whichever is first), then cancels
// the contexts of those still running; they go back to the queue
// unsettled (outcome task.Returned; never acked). Every settlement and
// give-back from then on is bounded by ctx as well as by the lease, and so
// is every lease extension, including one in progress when Stop began (a
// give-back of a delivery that did not run, starting only after ctx ended,
// is bounded by a short grace instead: see returnUnrun).
//
// Stop returns nil only once every goroutine of the pool has ended. When
// ctx ends first, it waits a short grace for cancelled handlers, gives back
// itself the deliveries of handlers that ignore their context, and returns
// an error wrapping ctx.Err() that names what still runs (those handlers,
// settlements, give-backs and lease renewals in progress, the fetcher, the
// housekeeper's lease extension; "pool goroutines" when it is none of
// these) and how many deliveries could not be given back in time (their
// leases run out and the backend delivers them again). What still runs
// ends on its own; a later Stop waits for it. Stop is idempotent and may
// be called before Start.
func (p *Pool) Stop(ctx context.Context) error {
	p.mu.Lock()
	switch p.state {
	case stateNew:
		p.state = stateStopped
		close(p.stopCh)
		close(p.done)
		p.mu.Unlock()
		p.extendCancel()
		p.comp.Set(lifecycle.Stopped, nil)
		return nil
	case stateStopping, stateStopped:
		p.mu.Unlock()
		select {
		case <-p.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("worker: stop pool %q: %w", p.queue, ctx.Err())
		}
	}
	p.state = stateStopping
	p.stopCtx.Store(&ctx)
	p.late.Store(0)
	p.halted.Store(true)
	close(p.stopCh)
	p.leaseCancel()
	p.mu.Unlock()
	p.comp.Set(lifecycle.Draining, nil)

	go p.shutdown()

	drain := time.NewTimer(p.cfg.DrainTimeout)
	defer drain.Stop()
	select {
	case <-p.done:
	case <-drain.C:
	case <-ctx.Done():
	}
	p.hardCancel()
	var err error
	select {
	case <-p.done:
	case <-ctx.Done():
		// Lease extensions in progress (begun before Stop, bounded only by
		// the lease) end with ctx.
		p.extendCancel()
		err = p.overrun(ctx)
	}
	p.extendCancel()
	p.mu.Lock()
	p.state = stateStopped
	p.mu.Unlock()
	p.comp.Set(lifecycle.Stopped, err)
	return err
}

// shutdown ends the pool once Stop began: the fetcher returns (giving back
// what it leased but could not hand over), the hand-over buffer goes back,
// the workers finish (and Stop's give-backs of what handlers that ignore
// cancellation held, see abandon), then the housekeeper, which extends
// leases while the handlers drain. It closes p.done when all of them have
// ended.
func (p *Pool) shutdown() {
	defer close(p.done)
	p.bg.Wait()
	// Nothing is handed over from now on; the workers may still take
	// (and give back) some of what is buffered.
	p.returnBuffered()
	p.wg.Wait()
	p.mu.Lock()
	abandoning := p.abandoning
	p.mu.Unlock()
	if abandoning != nil {
		<-abandoning
	}
	close(p.hkStop)
	p.hk.Wait()
}

// overrun finishes Stop when ctx ended before the pool did (see Stop).
func (p *Pool) overrun(ctx context.Context) error {
	grace := time.NewTimer(stopGrace)
	var abandoned []string
	select {
	case <-p.done:
	case <-grace.C:
		abandoned = p.abandon(ctx)
	}
	grace.Stop()
	var still []string
	if n := len(abandoned); n > 0 {
		still = append(still, fmt.Sprintf("%d handlers that ignore cancellation (tasks %s; Stop gives their deliveries back)",
			n, strings.Join(abandoned, ", ")))
	}
	if n := p.inFlight.Load() - int64(len(abandoned)); n > 0 {
		still = append(still, fmt.Sprintf("%d workers settling their deliveries", n))
	}
	if n := p.returning.Load(); n > 0 {
		still = append(still, fmt.Sprintf("%d give-backs to the backend", n))
	}
	if n := p.renewing.Load(); n > 0 {
		still = append(still, fmt.Sprintf("%d workers renewing a lease", n))
	}
	if p.fetching.Load() {
		still = append(still, "the fetcher")
	}
	if p.extending.Load() {
		still = append(still, "the housekeeper extending a lease")
	}
	ended := false
	select {
	case <-p.done:
		ended = true
	default:
	}
	if len(still) == 0 && !ended {
		// Between two of the counters above, or something none of them
		// covers: nil is only for a pool whose goroutines all ended.
		still = append(still, "pool goroutines")
	}
	late := p.late.Load()
	if len(still) == 0 && late == 0 {
		return nil // everything ended within the grace
	}
	err := fmt.Errorf("worker: stop pool %q: %w", p.queue, ctx.Err())
	if len(still) > 0 {
		err = fmt.Errorf("%w; still running: %s", err, strings.Join(still, ", "))
	}
	if late > 0 {
		err = fmt.Errorf("%w; %d deliveries could not be given back in time (they are delivered again when their leases end)", err, late)
	}
	return err
}

// returnBuffered gives back the deliveries waiting in the hand-over
// buffer, all at once (see giveBackAll).
func (p *Pool) returnBuffered() {
	var ds []*queue.Delivery
	for {
		select {
		case d := <-p.work:
			ds = append(ds, d)
			continue
		default:
		}
		break
	}
	if len(ds) > 0 {
		p.returnUnrun(ds...)
	}
}

// abandon gives back the deliveries of handlers that ignore cancellation
// and returns their task ids. The give-backs are bounded by stopGrace (ctx
// is over); Stop waits for them no longer than twice that, in case the
// backend ignores its context, and counts them as running until they
// return.
func (p *Pool) abandon(ctx context.Context) []string {
	// Announced before any claim: shutdown, past the workers, waits for
	// it (and if shutdown got there first, no worker holds anything).
	finished := make(chan struct{})
	p.mu.Lock()
	p.abandoning = finished
	slots := append([]*slot(nil), p.slots...)
	p.mu.Unlock()
	var (
		ds  []*queue.Delivery
		ids []string
	)
	for _, s := range slots {
		if d := s.claimCurrent(); d != nil {
			ds = append(ds, d)
			ids = append(ids, d.Task.ID)
		}
	}
	if len(ds) == 0 {
		close(finished)
		return nil
	}
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopGrace)
	n := int64(len(ds))
	p.returning.Add(n)
	go func() {
		defer close(finished)
		defer cancel()
		p.giveBackAll(gctx, ds)
		p.returning.Add(-n)
	}()
	wait := time.NewTimer(2 * stopGrace)
	select {
	case <-finished:
	case <-wait.C:
	}
	wait.Stop()
	return ids
}
