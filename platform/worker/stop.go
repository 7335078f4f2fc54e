package worker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
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

// overrun finishes Stop when ctx ended before the pool did (see Stop).
// Its grace, and its wait for the give-backs after it (abandon), end at
// limit's end at the latest: the caller's deadline.
func (p *Pool) overrun(ctx, limit context.Context) error {
	grace := time.NewTimer(p.grace)
	var abandoned []abandonedHandler
	select {
	case <-p.stop.done:
	case <-grace.C:
		spare := time.Now().Add(2 * p.grace)
		abandoned = p.abandon(ctx, limit)
		p.awaitSettled(abandoned, spare, limit)
	case <-limit.Done():
		abandoned = p.abandon(ctx, limit)
	}
	grace.Stop()
	var still []string
	ids := stillHeld(abandoned)
	if n := len(ids); n > 0 {
		still = append(still, fmt.Sprintf("%d handlers that ignore cancellation (tasks %s; Stop gives their deliveries back)",
			n, strings.Join(ids, ", ")))
	}
	if n := p.n.inFlight.Load() - int64(len(ids)); n > 0 {
		still = append(still, fmt.Sprintf("%d workers settling their deliveries", n))
	}
	still = append(still, p.stop.running.describe()...)
	ended := false
	select {
	case <-p.stop.done:
		ended = true
	default:
	}
	if len(still) == 0 && !ended {
		// Between two of the counters above, or something none of them
		// covers: nil is only for a pool whose goroutines all ended.
		still = append(still, "pool goroutines")
	}
	late := p.stop.late.Load()
	if len(still) == 0 && late == 0 && p.stop.cut.Load() == 0 {
		return nil // everything ended within the grace
	}
	err := fmt.Errorf("worker: stop pool %q: %w", p.queue, ctx.Err())
	if len(still) > 0 {
		err = fmt.Errorf("%w; still running: %s", err, strings.Join(still, ", "))
	}
	if late > 0 {
		err = fmt.Errorf("%w; %d deliveries could not be given back in time (they are delivered again when their leases end)", err, late)
	}
	if n := p.stop.cut.Load(); n > 0 {
		err = fmt.Errorf("%w; %s", err, cutShort(n))
	}
	return err
}

// awaitSettled waits, until spare (the two graces Stop keeps for
// give-backs after its grace for cancelled handlers, see stopMargin) or
// limit ends, for the pool to end, or, when abandoned handlers (see
// abandon) still running keep it from ending, for all else it does to
// end: the settlements of handlers that returned within the grace, whose
// give-backs (bounded by a grace of their own, see stopBounded) and
// telling may run past it, and the other work Stop's error would name.
// Stop's error named such a settlement as still running, the graces for
// it unused. An abandoned handler that returned meanwhile keeps nothing
// from ending: Stop waits for the rest.
func (p *Pool) awaitSettled(abandoned []abandonedHandler, spare time.Time, limit context.Context) {
	tick := time.NewTicker(p.grace / 10)
	defer tick.Stop()
	for {
		if n := int64(len(stillHeld(abandoned))); n > 0 && p.n.inFlight.Load() <= n && len(p.stop.running.describe()) == 0 {
			return // all that is left is the abandoned handlers still running
		}
		if !time.Now().Before(spare) {
			return
		}
		select {
		case <-p.stop.done:
			return
		case <-limit.Done():
			return
		case <-tick.C:
		}
	}
}

// abandonedHandler is a handler that ignores its cancellation, whose
// delivery d Stop claimed on its slot s to give it back itself.
type abandonedHandler struct {
	s *slot
	d *queue.Delivery
}

// stillHeld returns the task ids of the abandoned handlers still running:
// their slots hold their deliveries until their settlements ended.
func stillHeld(hs []abandonedHandler) []string {
	var ids []string
	for _, h := range hs {
		if h.s.current() == h.d {
			ids = append(ids, h.d.Task.ID)
		}
	}
	return ids
}

// cutShort is how Stop's error names n settlements its ctx cut short.
func cutShort(n int64) string {
	return fmt.Sprintf("%d settlements cut short (not told to their sources; delivered again when their leases end)", n)
}

// abandon gives back the deliveries of handlers that ignore cancellation
// and returns those handlers. What each give-back did (returned, or
// dead-lettered by the backend) is recorded on its slot: the handler, when
// it returns, is reported with that outcome, the one its source was told. The give-backs are bounded by stopGrace (ctx
// is over), and so is telling the source of a dead letter one made (see
// stopBounded); Stop waits for them no longer than twice that, in case the
// backend ignores its context, and counts them as running until they
// return; it stops waiting when limit ends (the caller's deadline): the
// give-backs then go on, and Stop's error names them.
func (p *Pool) abandon(ctx, limit context.Context) []abandonedHandler {
	// Announced before any claim: shutdown, past the workers, waits for
	// it (and if shutdown got there first, no worker holds anything).
	finished := make(chan struct{})
	p.mu.Lock()
	p.stop.abandoning = finished
	slots := append([]*slot(nil), p.slots...)
	p.mu.Unlock()
	var (
		ds    []*queue.Delivery
		held  []abandonedHandler
		taken []*slot
	)
	for _, s := range slots {
		if d := s.claimCurrent(); d != nil {
			ds = append(ds, d)
			held = append(held, abandonedHandler{s: s, d: d})
			taken = append(taken, s)
		}
	}
	if len(ds) == 0 {
		close(finished)
		return nil
	}
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.grace)
	n := int64(len(ds))
	end := p.stop.running.begin(giveBacks, n)
	go func() {
		defer close(finished)
		defer cancel()
		defer end()
		// Each slot learns what its give-back did: the handler's own
		// settlement, when it returns, reports that (claimedByStop).
		p.giveBackAll(gctx, ds, false, func(i int, g givenBack) { taken[i].gaveBack(g) })
	}()
	wait := time.NewTimer(2 * p.grace)
	select {
	case <-finished:
	case <-wait.C:
	case <-limit.Done():
	}
	wait.Stop()
	return held
}
