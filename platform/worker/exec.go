package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
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
	if !d.LeaseUntil.IsZero() && !p.epoch.Add(start).Before(d.LeaseUntil) {
		// The lease ended while the delivery waited in the hand-over
		// buffer: the backend may have given the task to another consumer
		// already, and will deliver it again in any case.
		p.expired.Add(1)
		p.log.Warn("lease ended before a worker took the task; skipped (it is delivered again)",
			zap.String("task", t.ID), zap.String("kind", t.Kind), zap.Time("lease_until", d.LeaseUntil))
		p.unreserve(1)
		return
	}
	p.inFlight.Add(1)
	// Extend at about half-life of the lease as the backend granted it
	// (the delivery may have waited for a worker since).
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
		reason = "no handler for kind " + t.Kind
		outcome = p.deadLetter(octx, s, d, reason)
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
		outcome, reason, err = p.settle(octx, s, d, rt, err)
	}
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

// settle turns a handler's result into the delivery's settlement and
// returns the outcome, the dead-letter reason and the error to report.
func (p *Pool) settle(ctx context.Context, s *slot, d *queue.Delivery, rt *route, err error) (task.Outcome, string, error) {
	t := d.Task
	if err == nil {
		if cerr := p.complete(ctx, t, task.Succeeded, ""); cerr != nil {
			err = fmt.Errorf("completion: %w", cerr)
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
			p.giveBack(d)
		}
		return task.Returned, "", err
	}
	p.failed.Add(1)
	p.setLastError(err)
	if task.IsPermanent(err) {
		var pe *task.PermanentError
		errors.As(err, &pe)
		return p.deadLetter(ctx, s, d, pe.Err.Error()), pe.Err.Error(), err
	}
	if max := rt.maxAttemptsFor(p.cfg.MaxAttempts); t.Attempt >= max {
		reason := err.Error()
		return p.deadLetter(ctx, s, d, reason), reason, err
	}
	delay, ok := task.RetryDelay(err)
	if !ok {
		delay = p.cfg.Backoff.Delay(t.Attempt)
	}
	if !s.claim() {
		return task.Returned, "", err
	}
	sctx, cancel := p.settleCtx()
	rerr := p.backend.Retry(sctx, d, time.Now().Add(delay))
	cancel()
	if rerr != nil {
		p.settleFailed("retry", t, rerr)
	}
	p.retried.Add(1)
	p.log.Debug("task failed, retrying", zap.String("task", t.ID), zap.String("kind", t.Kind),
		zap.Int("attempt", t.Attempt), zap.Duration("delay", delay), zap.Error(err))
	return task.Retried, "", err
}

// deadLetter reports the completion and dead-letters d with reason. A
// failed completion is logged and appended to the reason (re-driving the
// dead letter makes it again).
func (p *Pool) deadLetter(ctx context.Context, s *slot, d *queue.Delivery, reason string) task.Outcome {
	t := d.Task
	if cerr := p.complete(ctx, t, task.DeadLettered, reason); cerr != nil {
		p.log.Error("completion of dead-lettered task failed", zap.String("task", t.ID), zap.Error(cerr))
		reason += " (completion failed: " + cerr.Error() + ")"
	}
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
	extendEvery := min(max(p.cfg.Lease/4, time.Millisecond), 5*time.Second)
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
			ctx, cancel := context.WithTimeout(context.Background(), checkEvery)
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
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Lease/2)
		err := p.backend.Extend(ctx, d, p.cfg.Lease)
		cancel()
		if err != nil {
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

// Stop drains the pool: it stops leasing, lets in-flight handlers finish
// for up to DrainTimeout (or until ctx ends, whichever is first), then
// cancels the contexts of those still running; they go back to the queue
// unsettled (outcome task.Returned; never acked). Stop waits for the
// handlers to return until ctx ends; a handler that ignores its context
// past that point has its delivery returned by Stop itself and Stop
// returns an error. Stop is idempotent and may be called before Start.
func (p *Pool) Stop(ctx context.Context) error {
	p.mu.Lock()
	switch p.state {
	case stateNew:
		p.state = stateStopped
		close(p.stopCh)
		close(p.done)
		p.mu.Unlock()
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
	p.halted.Store(true)
	close(p.stopCh)
	p.leaseCancel()
	p.mu.Unlock()
	p.comp.Set(lifecycle.Draining, nil)
	defer close(p.done)

	p.bg.Wait() // the fetcher returns leased-but-undispatched work
	defer func() {
		close(p.hkStop)
		p.hk.Wait()
	}()

	workersDone := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(workersDone)
	}()
	drain := time.NewTimer(p.cfg.DrainTimeout)
	defer drain.Stop()
	var err error
	select {
	case <-workersDone:
	case <-drain.C:
	case <-ctx.Done():
	}
	p.hardCancel()
	defer p.returnBuffered()
	select {
	case <-workersDone:
	case <-ctx.Done():
		// Give cancelled handlers a moment even when ctx is already over.
		grace := time.NewTimer(50 * time.Millisecond)
		select {
		case <-workersDone:
		case <-grace.C:
			err = p.abandon()
		}
		grace.Stop()
	}
	p.mu.Lock()
	p.state = stateStopped
	p.mu.Unlock()
	p.comp.Set(lifecycle.Stopped, err)
	return err
}

// returnBuffered gives back the deliveries still waiting in the hand-over
// buffer once the fetcher has stopped.
func (p *Pool) returnBuffered() {
	for {
		select {
		case d := <-p.work:
			p.giveBack(d)
			p.unreserve(1)
		default:
			return
		}
	}
}

// abandon returns the deliveries of handlers that ignore cancellation.
func (p *Pool) abandon() error {
	p.mu.Lock()
	slots := append([]*slot(nil), p.slots...)
	p.mu.Unlock()
	n := 0
	for _, s := range slots {
		s.mu.Lock()
		d := s.d
		s.mu.Unlock()
		if d != nil && s.claim() {
			p.giveBack(d)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("worker: stop pool %q: %d handlers ignored cancellation; their tasks were returned to the queue", p.queue, n)
}
