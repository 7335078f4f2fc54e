package worker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plba/plba/platform/lifecycle"
)

// Stopping: Stop drains the pool and, when its ctx ends first, names what
// still runs. stopping holds what that needs: the signals, the wait groups
// of the pool's goroutines, and the work in progress outside a handler
// (running), by what Stop's error calls it.
type stopping struct {
	ch   chan struct{}                   // closed when Stop begins
	done chan struct{}                   // closed once every goroutine of the pool ended (after Stop)
	ctx  atomic.Pointer[context.Context] // Stop's ctx: bounds settlements once the pool stops

	workers     sync.WaitGroup
	fetcher     sync.WaitGroup
	housekeeper sync.WaitGroup
	// pauses counts the Pause calls giving the hand-over buffer back (in
	// their callers' goroutines); added to under Pool.mu while the pool
	// is not stopping, so before shutdown waits for it.
	pauses     sync.WaitGroup
	hkStop     chan struct{} // closed once the workers are done
	abandoning chan struct{} // guarded by Pool.mu: closed once Stop's give-backs for abandoned handlers returned; nil: none

	running running
	late    atomic.Int64 // give-backs cut short by their context
	cut     atomic.Int64 // settlements (retry, dead letter) cut short by Stop's ctx
}

// activity is work in progress outside a handler that can outlive Stop's
// ctx.
type activity int

const (
	giveBacks  activity = iota // give-backs outside a worker's settlement (unrun or abandoned deliveries)
	renewals                   // workers extending a lease before the handler starts
	fetching                   // the fetcher has not returned
	extensions                 // the housekeeper is inside a lease extension
	activities
)

// describe is how Stop's error names n of a.
func (a activity) describe(n int64) string {
	switch a {
	case giveBacks:
		return fmt.Sprintf("%d give-backs to the backend", n)
	case renewals:
		return fmt.Sprintf("%d workers renewing a lease", n)
	case fetching:
		return "the fetcher"
	default:
		return "the housekeeper extending a lease"
	}
}

// running counts the activities in progress.
type running struct{ n [activities]atomic.Int64 }

// begin counts n more of a and returns the function that ends them.
func (r *running) begin(a activity, n int64) (end func()) {
	r.n[a].Add(n)
	return func() { r.n[a].Add(-n) }
}

// describe names every activity in progress.
func (r *running) describe() []string {
	var out []string
	for a := range activities {
		if n := r.n[a].Load(); n > 0 {
			out = append(out, a.describe(n))
		}
	}
	return out
}

func (s *stopping) init() {
	s.ch = make(chan struct{})
	s.done = make(chan struct{})
	s.hkStop = make(chan struct{})
}

// stopGrace is how long Stop waits, once its ctx ended, for cancelled
// handlers to return, and then bounds the give-backs of those that did
// not.
const stopGrace = 50 * time.Millisecond

// stopMargin is how long before its ctx's deadline Stop stops waiting
// (see byDeadline), in stop graces: the grace and the give-backs after it
// (at most three stop graces) end before the deadline, not after it.
const stopMargin = 4

// byDeadline returns the context Stop works within: ctx, or, when ctx has
// a deadline, one that ends margin before it (at most half the time
// left), so that Stop returns by ctx's deadline even when it has to wait
// out its grace and give back the deliveries of handlers that ignore
// their cancellation. A caller that stops something else after the pool
// within the same deadline (fx runs no stop hook once the deadline has
// passed) gets its turn.
func byDeadline(ctx context.Context, margin time.Duration) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	margin = min(margin, time.Until(dl)/2)
	return context.WithDeadline(ctx, dl.Add(-max(margin, 0)))
}

// Stop drains the pool: it stops leasing, gives the deliveries waiting in
// the hand-over buffer back at once, lets in-flight handlers finish for up
// to DrainTimeout (or until ctx ends, whichever is first), then cancels
// the contexts of those still running; they go back to the queue
// unsettled (outcome task.Returned, or task.DeadLettered when the backend
// dead-letters a give-back, queue.ErrDeadLettered; never acked). Every settlement
// (retry, dead letter) and give-back from then on is bounded by ctx as
// well as by the lease, and so is every lease extension and settlement in
// progress when Stop began (one cut short fails: its source is told
// nothing, and the backend delivers the task again; a
// give-back or settlement that starts only after ctx ended, of a
// delivery that did not run or of a handler that returned once its
// cancellation came, is bounded by a short grace instead: see
// stopBounded and settleCtx).
//
// Stop returns nil only once every goroutine of the pool has ended. When
// ctx ends first, it waits a short grace for cancelled handlers, gives back
// itself the deliveries of handlers that ignore their context, waits two
// more for those give-backs and for the settlements of the handlers that
// returned within the grace (see awaitSettled), and returns
// an error wrapping ctx.Err() that names what still runs (those handlers,
// settlements, give-backs and lease renewals in progress, the fetcher, the
// housekeeper's lease extension; "pool goroutines" when it is none of
// these), how many deliveries could not be given back in time and how
// many settlements it cut short (their leases run out and the backend
// delivers them again). What still runs
// ends on its own; a later Stop waits for it. When ctx has a deadline,
// Stop ends a short margin (200ms, at most half the time left) before it,
// grace and give-backs included, so it returns by the deadline; when
// that margin is too short for them (a deadline a few hundred
// milliseconds away), it stops waiting for them at the deadline, and they
// go on, named in its error. Stop is idempotent and may be called before Start.
func (p *Pool) Stop(ctx context.Context) error {
	limit, cancelLimit := deadlineOf(ctx)
	defer cancelLimit()
	ctx, cancel := byDeadline(ctx, stopMargin*p.grace)
	defer cancel()
	p.mu.Lock()
	switch p.state {
	case stateNew:
		p.state = stateStopped
		close(p.stop.ch)
		close(p.stop.done)
		p.mu.Unlock()
		p.extendCancel()
		p.comp.Set(lifecycle.Stopped, nil)
		return nil
	case stateStopping, stateStopped:
		p.mu.Unlock()
		select {
		case <-p.stop.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("worker: stop pool %q: %w", p.queue, ctx.Err())
		}
	}
	p.state = stateStopping
	p.stop.ctx.Store(&ctx)
	p.stop.late.Store(0)
	// Settlements in progress, and those to come, end with ctx.
	context.AfterFunc(ctx, p.settlingStop)
	p.halted.Store(true)
	close(p.stop.ch)
	p.leaseCancel()
	p.mu.Unlock()
	p.comp.BeginStop()
	p.comp.Set(lifecycle.Draining, nil)

	go p.shutdown()

	drain := time.NewTimer(p.cfg.DrainTimeout)
	defer drain.Stop()
	select {
	case <-p.stop.done:
	case <-drain.C:
	case <-ctx.Done():
	}
	p.hardCancel()
	var err error
	select {
	case <-p.stop.done:
	case <-ctx.Done():
		// Lease extensions in progress (begun before Stop, bounded only by
		// the lease) end with ctx.
		p.extendCancel()
		err = p.overrun(ctx, limit)
	}
	p.extendCancel()
	if n := p.stop.cut.Load(); n > 0 && err == nil {
		// The pool ended within the grace, but not every settlement
		// happened.
		err = fmt.Errorf("worker: stop pool %q: %w; %s", p.queue, ctx.Err(), cutShort(n))
	}
	p.mu.Lock()
	p.state = stateStopped
	p.mu.Unlock()
	p.comp.Set(lifecycle.Stopped, err)
	return err
}

// shutdown ends the pool once Stop began: the fetcher returns (giving back
// what it leased but could not hand over), the hand-over buffer goes back,
// the workers finish (and the give-backs of a Pause that took the buffer
// before Stop began, and Stop's give-backs of what handlers that ignore
// cancellation held, see abandon), then the housekeeper, which extends
// leases while the handlers drain. It closes p.done when all of them have
// ended.
func (p *Pool) shutdown() {
	defer close(p.stop.done)
	p.stop.fetcher.Wait()
	// Nothing is handed over from now on; the workers may still take
	// (and give back) some of what is buffered.
	p.returnBuffered()
	p.stop.workers.Wait()
	// A Pause that began before Stop may still be giving back what it
	// took from the buffer: those deliveries are the pool's until they
	// are back in the queue.
	p.stop.pauses.Wait()
	p.mu.Lock()
	abandoning := p.stop.abandoning
	p.mu.Unlock()
	if abandoning != nil {
		<-abandoning
	}
	close(p.stop.hkStop)
	p.stop.housekeeper.Wait()
}

// deadlineOf returns a context that ends at ctx's deadline, and only
// then (never when ctx has none): how long Stop may wait at most, however
// short the margin byDeadline could leave it.
func deadlineOf(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(context.Background(), dl)
	}
	return context.Background(), func() {}
}
