package worker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/plba/plba/platform/queue"
)

// When Stop's ctx ends before the pool does: the grace for cancelled
// handlers, the give-backs of those that ignore their cancellation, the
// wait for those give-backs and for the settlements in progress, and the
// error that names what still runs.

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
