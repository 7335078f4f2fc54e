package worker

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// Settling a delivery: nil acks; task.Permanent, a rejected task, a kind
// without a route and the last attempt dead-letter; any other error
// retries after the back-off. Every outcome is what the backend did: a
// settlement it refused is counted as failed (Stats.SettleFailed) and
// reported as task.Returned (the delivery stays leased until its lease
// ends, then it is delivered again), and so is one whose call panicked
// (backend.go); a retry the backend turned into a
// dead letter (queue.ErrDeadLettered) is a dead letter. The source hears
// of the final outcome only once the backend confirmed it (complete.go).

// settleGuarded settles d with a panic during settlement recovered: an
// error whose methods panic past errorText (a backend call that panics is
// that call's error already, see backendCall). The delivery then fails
// like a handler error (counted: retried with
// back-off, dead-lettered at the last attempt); leaving the panic to the
// worker would give the task back without counting the attempt, and run
// it again at once, forever. rt is nil when the kind has no route;
// rejected is the reason to dead-letter d without a handler, if any: its
// task.HeaderRejected, or that its attempts are used (pastLastAttempt).
func (p *Pool) settleGuarded(ctx context.Context, s *slot, d *queue.Delivery, rt *route, rejected string, err error) (o task.Outcome, reason string, rerr error) {
	defer func() {
		if r := recover(); r != nil {
			o, reason, rerr = p.settlePanicked(ctx, s, d, rt, r)
		}
	}()
	switch {
	case rejected != "":
		return p.deadLetter(ctx, s, d, rejected, nil)
	case rt == nil:
		return p.deadLetter(ctx, s, d, "no handler for kind "+d.Task.Kind, nil)
	case err == nil:
		return p.ack(ctx, s, d)
	case p.hardCtx.Err() != nil:
		// Stopping: the handler was cancelled; the task goes back as it is.
		// It did not fail (Stats.Failed, the observer: task.ErrStopped).
		report := fmt.Errorf("%w: %w", task.ErrStopped, printable(err))
		if !s.claim() {
			return p.claimedByStop(s, report)
		}
		// A handler cancelled because Stop's ctx ended returns after it:
		// its give-back gets a grace of its own, as Stop's own do.
		parent, cancel := p.stopBounded()
		reason, dead, failed := p.giveBack(parent, d, false)
		cancel()
		if dead {
			return task.DeadLettered, reason, report
		}
		if failed != nil {
			return task.Returned, "", fmt.Errorf("%w; %w", report, failed)
		}
		return task.Returned, "", report
	}
	return p.fail(ctx, s, d, rt, err)
}

// claimedByStop is the outcome of the delivery of s, whose settlement
// found it claimed already: Stop gave it back itself (abandon), and what
// that give-back did is what the observer hears (task.Returned, or the
// dead letter the backend made of it, whose source Stop told), with
// report, the handler's error, and the give-back's error when it failed. Any other claim (a settlement that
// panicked after its own) reports task.Returned: whether it took effect
// is unknown.
func (p *Pool) claimedByStop(s *slot, report error) (task.Outcome, string, error) {
	if g, ok := s.takenBack(); ok {
		return g.outcome, g.reason, g.withFailed(report)
	}
	return task.Returned, "", report
}

// settlePanicked handles a panic recovered while settling d.
func (p *Pool) settlePanicked(ctx context.Context, s *slot, d *queue.Delivery, rt *route, r any) (task.Outcome, string, error) {
	t := d.Task
	err := fmt.Errorf("panic while settling the task: %v", r)
	p.log.Error("panic while settling a task", zap.String("task", t.ID), zap.String("kind", t.Kind),
		zap.Int("attempt", t.Attempt), zap.Any("panic", r), zap.Stack("stack"))
	if !s.unsettled(d) {
		// The panic came after the delivery was claimed for its
		// settlement (not in the backend's call, which backendCall
		// guards, nor in the completion, which completeGuarded does):
		// whether the settlement took effect is unknown. If not, the
		// lease runs out and the task is delivered again, as a new
		// attempt.
		p.setLastError(err)
		return p.claimedByStop(s, err)
	}
	return p.fail(ctx, s, d, rt, err)
}

// ack acks d, whose handler succeeded, and then tells its source. The ack
// passes context.Background(): on every task's path it stays
// allocation-free, and a backend whose ack waits for an answer bounds it
// itself (JetStream's by AckWait).
func (p *Pool) ack(ctx context.Context, s *slot, d *queue.Delivery) (task.Outcome, string, error) {
	if !s.claim() {
		return p.claimedByStop(s, nil)
	}
	if err := p.backendCall(OpAck, d.Task, func() error { return p.backend.Ack(context.Background(), d) }); err != nil {
		// The handler succeeded: the observer is told of the refused
		// ack, not of a failed handler.
		return task.Returned, "", &task.SettleError{Err: p.settleFailed(OpAck, d.Task, err)}
	}
	p.n.succeeded.Add(1)
	// Checked first: a task's success costs no allocation while debug is off.
	if ce := p.log.Check(zap.DebugLevel, "task succeeded"); ce != nil {
		ce.Write(zap.String("task", d.Task.ID), zap.String("kind", d.Task.Kind), zap.Int("attempt", d.Task.Attempt))
	}
	p.complete(ctx, d.Task, task.Succeeded, "")
	return task.Succeeded, "", nil
}

// fail settles d after a failed attempt: dead letter when err is
// permanent or the attempt was the last the route (rt; nil: the pool's
// setting) allows, else retry after the back-off or the delay err asks
// for. It returns the outcome, the dead-letter reason and the error to
// report, in a form that can be printed.
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
	p.n.failed.Add(1)
	p.n.lastErr.Store(&msg)
	if permanent {
		return p.deadLetter(ctx, s, d, permanentReason(err), report)
	}
	maxAttempts := p.cfg.MaxAttempts
	if rt != nil {
		maxAttempts = rt.maxAttemptsFor(p.cfg.MaxAttempts)
	}
	if t.Attempt >= maxAttempts {
		return p.deadLetter(ctx, s, d, msg, report)
	}
	if !s.claim() {
		return p.claimedByStop(s, report)
	}
	d.FailReason = msg // stored, should the backend dead-letter the task instead
	sctx, cancel := p.settleCtx()
	rerr := p.backendCall(OpRetry, t, func() error { return p.backend.Retry(sctx, d, time.Now().Add(delay)) })
	deadLettered := rerr != nil && backendIs(rerr, queue.ErrDeadLettered)
	if rerr != nil && !deadLettered {
		p.settleCut(sctx)
	}
	cancel()
	switch {
	case rerr == nil:
		p.n.retried.Add(1)
		p.log.Info("task failed, retrying", zap.String("task", t.ID), zap.String("kind", t.Kind),
			zap.Int("attempt", t.Attempt), zap.Duration("delay", delay), zap.String("error", msg))
		return task.Retried, "", report
	case deadLettered:
		// The backend's own delivery limit: it dead-lettered the task.
		reason := d.DeadReason
		if reason == "" {
			why, _ := errorText(rerr)
			reason = msg + " (" + why + ")"
		}
		p.dead(ctx, d, reason)
		return task.DeadLettered, reason, report
	default:
		return task.Returned, "", fmt.Errorf("%w; %w", report, p.settleFailed(OpRetry, t, rerr))
	}
}

// deadLetter dead-letters d with reason and then tells its source. report
// is the handler's error, if any, passed through to the observer.
func (p *Pool) deadLetter(ctx context.Context, s *slot, d *queue.Delivery, reason string, report error) (task.Outcome, string, error) {
	if !s.claim() {
		return p.claimedByStop(s, report)
	}
	sctx, cancel := p.settleCtx()
	err := p.backendCall(OpDeadLetter, d.Task, func() error { return p.backend.DeadLetter(sctx, d, reason) })
	if err != nil {
		p.settleCut(sctx)
	}
	cancel()
	if err != nil {
		serr := p.settleFailed(OpDeadLetter, d.Task, err)
		if report != nil {
			serr = fmt.Errorf("%w; %w", report, serr)
		}
		return task.Returned, "", serr
	}
	if d.DeadReason != "" {
		reason = d.DeadReason // the dead letter's, as stored
	}
	p.dead(ctx, d, reason)
	return task.DeadLettered, reason, report
}

// dead counts and logs d, which the backend dead-lettered with reason,
// and tells its source. This is the one log line of a dead letter the
// pool made (warn); one the backend made on its own is logged once by
// the runtime's teller. Sources should not log it again at warn.
func (p *Pool) dead(ctx context.Context, d *queue.Delivery, reason string) {
	t := d.Task
	p.n.dead.Add(1)
	p.log.Warn("task dead-lettered", zap.String("task", t.ID), zap.String("kind", t.Kind),
		zap.Int("attempt", t.Attempt), zap.String("reason", reason))
	p.complete(ctx, t, task.DeadLettered, reason)
}

// settleParent is Stop's ctx once the pool stops, else
// context.Background(). (Settlement calls have their own, see settleCtx;
// give-backs and completions use stopBounded.)
func (p *Pool) settleParent() context.Context {
	if c := p.stop.ctx.Load(); c != nil {
		return *c
	}
	return context.Background()
}

// stopBounded is the parent of give-backs and of telling a source of an
// outcome that happened: context.Background() before Stop, Stop's ctx
// once Stop began, or, once that ended, a context of its own that ends
// after stopGrace. What starts after Stop's ctx ended (a handler that
// honours its cancellation returning after Stop cancelled it; one that
// ignores it, succeeding just then; Stop's give-backs of the deliveries
// of those that go on; a give-back of a delivery not run, see
// returnUnrun; a dead letter the backend made of a give-back) could not
// even be tried with that ctx: a backend that honours its context fails
// the give-back at once, and the delivery waits for its lease to end and
// comes back as a new attempt; a source whose Complete honours its
// context fails the completion, and hears of the task only when it emits
// it again after a restart, if ever. The grace keeps Stop bounded: its
// own give-backs and their telling end within the two graces it waits
// for them (see abandon).
func (p *Pool) stopBounded() (context.Context, context.CancelFunc) {
	stop := p.settleParent()
	if stop.Err() == nil {
		return stop, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(stop), p.grace)
}

// settleCtx bounds a settlement call (retry, dead letter) by the lease
// and by Stop's ctx, whichever ends first, also when the call began
// before Stop (p.settling ends with Stop's ctx). It is not tied to the
// handler's context (a settlement must go through even while the pool
// stops), but a backend that never answers (a stream without a leader,
// a publish whose answer was lost) cannot hold a worker longer than the
// delivery's lease (after that the backend redelivers the task anyway),
// nor Stop past its ctx: the settlement fails, the source is told
// nothing, and the delivery is left to the backend, which delivers it
// again when its lease ends. A settlement that begins only after Stop's
// ctx ended (the attempt of a worker that died once Stop cancelled its
// handler, a handler that returned just then) gets stopGrace of its own
// instead, as a give-back then does (see stopBounded): with the ended
// ctx it could not even be tried.
func (p *Pool) settleCtx() (context.Context, context.CancelFunc) {
	if p.settling.Err() != nil || p.settleParent().Err() != nil { // (p.settling ends a moment after Stop's ctx)
		return context.WithTimeout(context.Background(), min(p.grace, p.cfg.Lease))
	}
	return context.WithTimeout(p.settling, p.cfg.Lease)
}

// settleCut counts the failed settlement whose context Stop's ctx, or
// the grace after it, ended (Stop's error reports it).
func (p *Pool) settleCut(sctx context.Context) {
	if sctx.Err() != nil && p.settling.Err() != nil {
		p.stop.cut.Add(1)
	}
}

// settleFailed counts and logs the failed settlement op of t and returns
// the error to report. The delivery is not settled: it stays leased until
// its lease ends, and the backend delivers it again.
func (p *Pool) settleFailed(op string, t *task.Task, err error) error {
	p.n.settleFailed(op).Add(1)
	serr := fmt.Errorf("%s task %s: %w", op, t.ID, printable(err))
	p.setLastError(serr)
	if backendIs(err, queue.ErrLeaseLost) {
		p.log.Warn("lease lost before settlement; the task will be delivered again, or another delivery of it settled it",
			zap.String("op", op), zap.String("task", t.ID), zap.String("kind", t.Kind))
		return serr
	}
	p.log.Error("settlement failed; the task will be delivered again when its lease ends",
		zap.String("op", op), zap.String("task", t.ID), zap.String("kind", t.Kind), zap.Error(serr))
	return serr
}
