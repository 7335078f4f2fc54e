package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// The worker goroutines: each takes deliveries from the hand-over buffer
// and executes them (exec.go) until it is surplus (Resize) or the pool
// stops; one that dies outside a handler is replaced.

// slot is one worker's current delivery, shared with the housekeeper
// (lease extension) and Stop (returning what a stuck handler holds).
type slot struct {
	mu      sync.Mutex
	d       *queue.Delivery
	settled bool
	// extendAt and keepUntil are on the pool's clock (Pool.clock): they
	// cost no time.Time arithmetic per task. extendAt is when the
	// housekeeper extends d's lease next; keepUntil when it stops
	// extending it: one lease period after its handler's timeout (zero:
	// no handler runs).
	extendAt  time.Duration
	keepUntil time.Duration
	overrun   bool // keepUntil passed with the handler still running
	// taken is set when Stop claimed d to give it back itself (a handler
	// that ignores its cancellation, see abandon) and closed once that
	// give-back returned, with its outcome in given: what the handler's
	// own settlement then reports.
	taken chan struct{}
	given givenBack

	// The observer's side of the current delivery, for a worker that
	// crashes before its settlement (crashed): octx is the context the
	// observer's Starting returned (the one it was given while Starting
	// runs; nil before Starting was called), and handlerAt the pool clock
	// when the handler's run began (ran: it did), herr what it returned
	// (for a settlement its worker dies in). Written and read by the
	// slot's worker goroutine only (crashed runs on it), so unguarded.
	octx      context.Context
	handlerAt time.Duration
	ran       bool
	herr      error
	finished  bool // the observer's Finished was called for the current delivery
}

// begin records d as the slot's current delivery, whose lease is
// extended from extendAt on until keepUntil.
func (s *slot) begin(d *queue.Delivery, extendAt, keepUntil time.Duration) {
	s.mu.Lock()
	s.d, s.settled, s.extendAt, s.keepUntil, s.overrun = d, false, extendAt, keepUntil, false
	s.taken, s.given = nil, givenBack{}
	s.mu.Unlock()
	s.octx, s.ran, s.herr, s.finished = nil, false, nil, false
}

// claim gives the caller the right to settle the current delivery; only
// one caller gets it.
func (s *slot) claim() bool {
	s.mu.Lock()
	ok := s.d != nil && !s.settled
	s.settled = true
	s.mu.Unlock()
	return ok
}

// unsettled reports whether d is the slot's delivery and nobody claimed
// it yet.
func (s *slot) unsettled(d *queue.Delivery) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d == d && !s.settled
}

// claimCurrent claims the current delivery for Stop, which gives it back
// itself, and returns it; nil when there is none or it was claimed
// already. Stop reports the give-back's outcome with gaveBack.
func (s *slot) claimCurrent() *queue.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.d == nil || s.settled {
		return nil
	}
	s.settled = true
	s.taken = make(chan struct{})
	return s.d
}

// givenBack is what Stop's give-back of a delivery did: returned, or
// dead-lettered with reason; failed is the error of a release that failed
// otherwise (nil: none).
type givenBack struct {
	outcome task.Outcome
	reason  string
	failed  error
}

// gaveBack records g, the outcome of Stop's give-back of the delivery it
// claimed (claimCurrent).
func (s *slot) gaveBack(g givenBack) {
	s.mu.Lock()
	s.given = g
	taken := s.taken
	s.mu.Unlock()
	close(taken)
}

// takenBack returns the outcome of the current delivery's give-back when
// Stop claimed it (see abandon), once that returned, and false when Stop
// did not. The wait is the give-back's: bounded by its context, and
// Stop's shutdown waits for that give-back as well.
func (s *slot) takenBack() (givenBack, bool) {
	s.mu.Lock()
	taken := s.taken
	s.mu.Unlock()
	if taken == nil {
		return givenBack{}, false
	}
	<-taken
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.given, true
}

// withFailed is report, the handler's error (nil: it succeeded), with
// the failed give-back g added, if it failed.
func (g givenBack) withFailed(report error) error {
	switch {
	case g.failed == nil:
		return report
	case report == nil:
		return &task.SettleError{Err: g.failed}
	}
	return fmt.Errorf("%w; %w", report, g.failed)
}

// current returns the slot's delivery (nil when idle).
func (s *slot) current() *queue.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d
}

// end clears the slot.
func (s *slot) end() {
	s.mu.Lock()
	s.d = nil
	s.mu.Unlock()
}

// spawnLocked starts a worker on s. p.mu must be held.
func (p *Pool) spawnLocked(s *slot) {
	p.slots = append(p.slots, s)
	p.workersN.Add(1)
	p.stop.workers.Add(1)
	go p.worker(s)
}

// worker runs deliveries until it is surplus or the pool stops. A panic
// outside the handler and the settlement (both recovered separately)
// kills the worker; it is logged and counted, its delivery, unless
// settled already, fails like a handler error (see crashed), and a
// replacement starts on the same slot. So does runtime.Goexit, which
// nothing can recover (a handler calling testing's FailNow, say).
func (p *Pool) worker(s *slot) {
	defer p.stop.workers.Done()
	returned := false
	defer func() {
		if r := recover(); r != nil {
			p.crashed(s, r)
		} else if !returned {
			p.crashed(s, errGoexit)
		}
	}()
	p.loop(s)
	returned = true
}

// errGoexit is what crashed reports for a worker ended by runtime.Goexit.
// A source's Complete that calls it fails its completion instead (see
// source.Completions.Complete): the worker goes on.
var errGoexit = fmt.Errorf("%w (by the handler, a middleware or an observer)", task.ErrGoexit)

// loop is the worker's loop; it returns when the worker is surplus or
// the pool stops.
func (p *Pool) loop(s *slot) {
	for {
		// Load the kick channel before the surplus check: a Resize that
		// lowers the target after the check closes this very channel, so
		// the worker wakes and checks again instead of sleeping on a newer
		// one.
		kick := *p.kick.Load()
		if p.surplus(s) {
			return
		}
		// Fast path: take buffered work without a full select.
		var d *queue.Delivery
		select {
		case d = <-p.work:
		default:
		}
		if d != nil {
			p.run(s, d)
			continue
		}
		select {
		case d := <-p.work:
			p.run(s, d)
		case <-kick:
		case <-p.stop.ch:
			return
		}
	}
}

// run processes d unless the pool is paused or stopping, in which case d
// goes back to the queue.
func (p *Pool) run(s *slot, d *queue.Delivery) {
	if p.halted.Load() {
		p.returnUnrun(d)
		return
	}
	p.process(s, d)
}

// surplus removes s and reports true when the pool has more workers than
// its target.
func (p *Pool) surplus(s *slot) bool {
	if p.workersN.Load() <= p.target.Load() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.workersN.Load() <= p.target.Load() {
		return false
	}
	p.workersN.Add(-1)
	for i, x := range p.slots {
		if x == s {
			p.slots = append(p.slots[:i], p.slots[i+1:]...)
			break
		}
	}
	return true
}

// crashed replaces the worker of s, which died of r outside its handler
// and outside settlement (an observer's Finished, say), or of
// runtime.Goexit anywhere (r is errGoexit). The delivery it
// held, unless already settled, fails like a handler error: retried after
// the back-off, or dead-lettered at its last attempt (one Stop gave back
// itself while its handler ran is reported with what that give-back did:
// crashedTaken). Giving it back
// uncounted (Release) would let a task that crashes every worker run
// again at once, forever.
func (p *Pool) crashed(s *slot, r any) {
	p.n.restarts.Add(1)
	err := fmt.Errorf("worker crashed: %v", r)
	p.setLastError(err)
	p.log.Error("worker goroutine died (a panic outside a handler, or runtime.Goexit); replacing it",
		zap.Any("panic", r), zap.Stack("stack"))
	// Deferred: the backend's call settling the delivery below may end
	// this goroutine too (runtime.Goexit); the worker is replaced all the
	// same.
	defer func() {
		p.stop.workers.Add(1)
		go p.worker(s)
	}()
	if d := s.current(); d != nil {
		// Settled (or given back by Stop) before the worker died, or
		// settled now: either way the pool finished with it.
		defer func() {
			p.n.processed.Add(1)
			p.n.lastFinished.Store(int64(p.clock()))
			s.end()
			p.n.inFlight.Add(-1)
			p.unreserve(1)
		}()
		if s.unsettled(d) {
			p.settleCrashed(s, d, err)
		} else {
			p.crashedTaken(s, d, err)
		}
	}
}

// crashedTaken reports d, the delivery of a crashed worker that was
// claimed before the worker died, to the observer that saw it start and
// did not hear how it ended. One that Stop claimed and gave back itself
// while its handler ran (abandon) is reported with what that give-back
// did (see claimedByStop), as stopped, not failed; one its own
// settlement claimed, the worker dying inside it (a backend call that
// called runtime.Goexit), as returned with a *task.SettleError: a
// failed settlement. A panic in the observer is logged.
func (p *Pool) crashedTaken(s *slot, d *queue.Delivery, err error) {
	if s.octx == nil || s.finished {
		return
	}
	g, ok := s.takenBack()
	o, reason := g.outcome, g.reason
	var report error
	if ok {
		report = g.withFailed(fmt.Errorf("%w: %w", task.ErrStopped, err))
	} else {
		// Claimed by its own settlement, and the worker died before
		// Finished: in the backend's call (runtime.Goexit; a panic there
		// is the call's error), which backendGoexit counted as a failed
		// settlement. Whether it took effect is unknown.
		o, reason, report = task.Returned, "", p.diedSettling(d, s.herr, err)
	}
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("observer panicked on the task of a crashed worker", zap.String("task", d.Task.ID),
				zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	took := task.NotRun
	if s.ran {
		took = p.clock() - s.handlerAt
	}
	s.finished = true
	p.obs.Finished(s.octx, d.Task, o, report, reason, took)
}

// diedSettling is the error the observer hears for d, whose worker died
// (of err) in its settlement after the handler returned herr: err as a
// failed settlement (*task.SettleError) when the handler succeeded, added
// to the handler's error otherwise (wrapping task.ErrStopped when the
// pool's Stop cancelled the handler), as for a settlement the backend
// refused (see Observer.Finished).
func (p *Pool) diedSettling(d *queue.Delivery, herr, err error) error {
	serr := fmt.Errorf("settlement of task %s: %w", d.Task.ID, err)
	switch {
	case herr == nil:
		return &task.SettleError{Err: serr}
	case p.hardCtx.Err() != nil:
		return fmt.Errorf("%w: %w; %w", task.ErrStopped, printable(herr), serr)
	}
	return fmt.Errorf("%w; %w", printable(herr), serr)
}

// settleCrashed fails d, the delivery of a crashed worker. A panic here
// (an error whose methods panic; a backend call that panics is a failed
// settlement, see backendCall) is logged; the delivery's lease then runs
// out and the backend delivers it again, as a new attempt.
func (p *Pool) settleCrashed(s *slot, d *queue.Delivery, err error) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("panic while settling the task of a crashed worker", zap.String("task", d.Task.ID),
				zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	octx := s.octx
	if octx == nil {
		octx = p.hardCtx
	}
	// Unless fail returns (its backend call may end this goroutine as
	// well: runtime.Goexit, a failed settlement, see backendGoexit), the
	// observer hears of a failed settlement.
	o, reason, rerr := task.Returned, "", fmt.Errorf("%w; the settlement of task %s did not return", err, d.Task.ID)
	if s.octx != nil {
		defer func() {
			// The observer saw the delivery start: it hears how it ended.
			took := task.NotRun
			if s.ran {
				took = p.clock() - s.handlerAt
			}
			s.finished = true
			p.obs.Finished(s.octx, d.Task, o, rerr, reason, took)
		}()
	}
	o, reason, rerr = p.fail(octx, s, d, p.router.lookup(d.Task.Kind), err)
}
