package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"

	"github.com/plba/plba/internal/sleep"
	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// Leasing and the hand-over buffer: the fetcher leases batches while the
// pool has room (one delivery per worker plus BatchSize in the buffer
// p.work) and hands them to the workers; what the pool leased but will not
// run goes back to the queue uncounted (Release).

// signal wakes the fetcher (non-blocking).
func (p *Pool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// free returns how many more deliveries the pool may hold: one per worker
// plus BatchSize waiting in the hand-over buffer.
func (p *Pool) free() int64 {
	return p.target.Load() + int64(p.cfg.BatchSize) - p.leased.Load()
}

// refill is how much room makes the fetcher lease again while it holds
// deliveries: half a batch, so that a saturated pool leases in batches
// instead of once per finished task.
func (p *Pool) refill() int64 { return max(1, int64(p.cfg.BatchSize)/2) }

// reserve blocks until the pool may lease (running, not paused, room for
// at least refill deliveries, or any room when it holds none) and reserves
// up to BatchSize slots. It returns false on stop.
func (p *Pool) reserve() (int, context.Context, bool) {
	for {
		p.mu.Lock()
		if p.state != stateRunning {
			p.mu.Unlock()
			return 0, nil, false
		}
		if !p.paused {
			free := p.free()
			if free >= p.refill() || (free > 0 && p.leased.Load() == 0) {
				n := min(free, int64(p.cfg.BatchSize))
				p.leased.Add(n)
				ctx := p.leaseCtx
				p.mu.Unlock()
				return int(n), ctx, true
			}
		}
		p.mu.Unlock()
		select {
		case <-p.wake:
		case <-p.stop.ch:
			return 0, nil, false
		}
	}
}

// unreserve gives back n reserved slots and wakes the fetcher when that
// makes room for a refill.
func (p *Pool) unreserve(n int) {
	if n > 0 {
		left := p.leased.Add(-int64(n))
		if free := p.target.Load() + int64(p.cfg.BatchSize) - left; free >= p.refill() || left == 0 {
			p.signal()
		}
	}
}

// fetch is the leasing loop. A failing Lease is tried again after a
// back-off (leaseRetry), and the pool is degraded until a Lease returns
// tasks, or, while the next Lease waits on an empty queue, a probe of the
// backend reaches the queue; a Lease that waits while the backend stays
// unreachable for UnreachableAfter degrades the pool as well (recover.go).
func (p *Pool) fetch() { p.fetchAfter(leaseRetry(), 0) }

// errLeaseGoexit is the error of a Lease that ended the fetcher's
// goroutine.
var errLeaseGoexit = errors.New("the backend's Lease ended its goroutine (runtime.Goexit)")

// fetchAfter runs the leasing loop after delay (zero: at once; a failed
// Lease's back-off, retry, when not). A Lease that ends the fetcher's
// goroutine with runtime.Goexit, which nothing can recover, is a failed
// Lease: the reservation it held is freed, the pool degraded, and a new
// fetcher takes over after the back-off. Left alone, the pool would have
// shown running and never leased again. One whose context Pause or Stop
// cancelled is no failure, as a Lease that fails then is not: the pool
// shows what they set, and the new fetcher goes on at once (reserve
// decides).
func (p *Pool) fetchAfter(retry *backoff.ExponentialBackOff, delay time.Duration) {
	var (
		returned bool
		cur      leaseInProgress
	)
	defer func() {
		if !returned {
			if r := recover(); r != nil {
				panic(r) // not the backend's: its calls are guarded (backendCall)
			}
			p.unreserve(cur.n)
			p.leaseEnds()
			p.setLastError(errLeaseGoexit)
			delay := time.Duration(0)
			if cur.ctx == nil || cur.ctx.Err() == nil {
				delay = retry.NextBackOff()
				p.log.Warn("lease failed", zap.Error(errLeaseGoexit), zap.Duration("retry_in", delay))
				p.comp.Set(lifecycle.Degraded, fmt.Errorf("lease: %w", errLeaseGoexit))
			} else {
				p.log.Warn("lease ended its goroutine once paused or stopping", zap.Error(errLeaseGoexit))
			}
			p.stop.fetcher.Add(1) // before this one's Done: Stop waits for the new one
			go p.fetchAfter(retry, delay)
		} else {
			p.stop.running.n[fetching].Store(0)
		}
		p.stop.fetcher.Done()
	}()
	if delay > 0 && !sleep.For(p.stop.ch, delay) {
		returned = true
		return
	}
	p.leaseLoop(retry, delay > 0, &cur)
	returned = true
}

// leaseInProgress is what the fetcher's Lease in progress holds of the
// pool's reservations (n) and its context (nil: none in progress).
type leaseInProgress struct {
	n   int
	ctx context.Context
}

// leaseLoop is the fetcher's loop; failing is whether the pool is
// degraded by a failed Lease, and *cur the Lease in progress.
func (p *Pool) leaseLoop(retry *backoff.ExponentialBackOff, failing bool, cur *leaseInProgress) {
	for {
		n, ctx, ok := p.reserve()
		if !ok {
			return
		}
		*cur = leaseInProgress{n: n, ctx: ctx}
		if failing && p.comp.State() != lifecycle.Degraded {
			// Paused and resumed since it failed: Resume showed the pool
			// running, and the watch finds out afresh whether the
			// backend is reachable.
			failing = false
		}
		var ds []*queue.Delivery
		p.leaseBegins(ctx, failing) // recover.go
		err := p.backendCall(opLease, nil, func() (err error) {
			ds, err = p.backend.Lease(ctx, p.queue, n, p.cfg.Lease)
			return err
		})
		if was := failing; was != p.leaseEnds() {
			// A probe reached the queue while this Lease waited (the pool
			// is healthy again), or the probes failed for UnreachableAfter
			// (degraded). A failure of this Lease is still recorded below,
			// after it.
			failing = !was
			retry.Reset()
		}
		*cur = leaseInProgress{}
		p.unreserve(n - len(ds))
		if err != nil && len(ds) > 0 {
			// Leased all the same (a batch that broke off midway): run
			// them, then treat the error as any other.
			p.handOver(ds)
		}
		if err != nil {
			if ctx.Err() != nil {
				continue // paused or stopping: reserve decides
			}
			delay := retry.NextBackOff()
			failing = true
			p.setLastError(err)
			p.log.Warn("lease failed", zap.Error(err), zap.Duration("retry_in", delay))
			p.comp.Set(lifecycle.Degraded, fmt.Errorf("lease: %w", err))
			if !sleep.For(p.stop.ch, delay) {
				return
			}
			continue
		}
		if failing {
			failing = false
			retry.Reset()
			p.mu.Lock()
			healthy := p.healthyLocked()
			p.mu.Unlock()
			p.comp.Set(healthy, nil)
		}
		p.handOver(ds)
	}
}

// handOver puts ds into the hand-over buffer, blocking while it is full;
// what cannot be handed over (paused, stopping) goes back.
func (p *Pool) handOver(ds []*queue.Delivery) {
	for i, d := range ds {
		select {
		case p.work <- d:
			continue
		default:
		}
		if p.halted.Load() {
			// Paused with the buffer full: the rest goes back now.
			p.returnUnrun(ds[i:]...)
			break
		}
		select {
		case p.work <- d:
		case <-p.stop.ch:
			p.returnUnrun(ds[i:]...)
			return
		}
	}
	if p.halted.Load() {
		// Paused while this batch was leased or handed over: Pause may
		// have emptied the buffer before these arrived.
		p.returnBuffered()
	}
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

// returnUnrun gives back deliveries the pool leased but did not run (see
// giveBackAll) and frees their reservations. The give-backs are bounded
// by Stop's ctx once Stop began; one that starts after that ctx ended (a
// worker whose lease renewal outlived it, a fetcher whose Lease ignored
// cancellation) is bounded by stopGrace instead, like Stop's own
// give-backs of abandoned handlers: with Stop's ended ctx it could not
// even be tried, and the delivery would wait for its lease to run out
// and be delivered again as a new attempt.
func (p *Pool) returnUnrun(ds ...*queue.Delivery) {
	end := p.stop.running.begin(giveBacks, int64(len(ds)))
	parent, cancel := p.stopBounded()
	p.giveBackAll(parent, ds, true, nil)
	cancel()
	end()
	p.unreserve(len(ds))
}

// giveBack returns d to the queue unsettled (Release, which does not count
// the attempt), bounded by parent and by the lease. A failed release is
// counted (SettleFailures.Release): the delivery stays leased until its
// lease ends, and comes back then as a new attempt (sooner when the
// backend brings the lease's end forward: JetStream gives a delivery whose
// copy it could not store back with a negative ack). A delivery the pool
// did not run (unrun) whose lease the backend says ended (queue.ErrLeaseLost)
// expired instead, in the hand-over buffer: it is counted as a worker
// that took it would have counted it (Stats.Expired), since nothing
// failed; the backend delivers it again as a new attempt. A release the
// backend turned into a dead letter (queue.ErrDeadLettered: the last
// delivery its delivery limit allows, which it could not give back
// uncounted) is a failed release and a dead letter: counted as both, and
// told to the task's source (with a grace of its own once Stop's ctx
// ended, see stopBounded). giveBack then reports the dead letter's reason
// and true. failed is the error of a failed release that is no dead
// letter, to report (nil otherwise).
func (p *Pool) giveBack(parent context.Context, d *queue.Delivery, unrun bool) (deadReason string, dead bool, failed error) {
	ctx, cancel := context.WithTimeout(parent, p.cfg.Lease)
	defer cancel()
	err := p.backendCall(OpRelease, d.Task, func() error { return p.backend.Release(ctx, d) })
	if err == nil {
		p.n.returned.Add(1)
		return "", false, nil
	}
	if unrun && backendIs(err, queue.ErrLeaseLost) {
		p.n.expired.Add(1)
		p.log.Warn("lease ended before the task was given back unrun; it is delivered again",
			zap.String("task", d.Task.ID), zap.String("kind", d.Task.Kind), zap.Time("lease_until", d.LeaseUntil))
		return "", false, nil
	}
	if backendIs(err, queue.ErrDeadLettered) {
		p.n.settleFailed(OpRelease).Add(1)
		p.setLastError(fmt.Errorf("%s task %s: %w", OpRelease, d.Task.ID, printable(err)))
		reason := d.DeadReason
		if reason == "" {
			reason, _ = errorText(err)
		}
		p.dead(parent, d, reason)
		return reason, true, nil
	}
	if ctx.Err() != nil {
		p.stop.late.Add(1)
	}
	return "", false, p.settleFailed(OpRelease, d.Task, err)
}

// errReleaseGoexit is the error of a give-back whose Release ended its
// goroutine.
var errReleaseGoexit = errors.New("the backend's Release ended its goroutine (runtime.Goexit)")

// maxParallelGiveBacks bounds the backend calls of one giveBackAll.
const maxParallelGiveBacks = 16

// giveBackAll gives ds back, up to maxParallelGiveBacks at a time, and
// waits for all: a slow backend delays Pause and Stop by about one call,
// not by one call per delivery. gave, if not nil, is told what became of
// each ds[i] (see giveBack).
//
// The calls run on goroutines of their own, a single one included: a
// Release that ends its goroutine (runtime.Goexit, which nothing can
// recover; backendCall counts it as a failed release) ends one of those,
// and its delivery is told to gave as a failed release, the others are
// given back all the same, and the caller (a worker, the fetcher, Stop's
// shutdown or Stop's give-backs, Pause's caller) goes on to free what it
// holds for them. Ending the caller instead would lose the reservations,
// end the fetcher for good, or leave a handler's settlement waiting for
// ever for the outcome of Stop's give-back of its delivery.
func (p *Pool) giveBackAll(parent context.Context, ds []*queue.Delivery, unrun bool, gave func(i int, g givenBack)) {
	one := func(i int) {
		var (
			g        givenBack
			returned bool
		)
		if gave != nil {
			defer func() {
				if !returned {
					g = givenBack{outcome: task.Returned, failed: fmt.Errorf("%s task %s: %w", OpRelease, ds[i].Task.ID, errReleaseGoexit)}
				}
				gave(i, g)
			}()
		}
		reason, dead, failed := p.giveBack(parent, ds[i], unrun)
		returned = true
		g = givenBack{outcome: task.Returned, failed: failed}
		if dead {
			g = givenBack{outcome: task.DeadLettered, reason: reason}
		}
	}
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	// A goroutine that ended in a call leaves the rest to the others;
	// should all of them end so, new ones take over.
	for next.Load() < int64(len(ds)) {
		for range min(len(ds)-int(next.Load()), maxParallelGiveBacks) {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(len(ds)); i = next.Add(1) - 1 {
					one(int(i))
				}
			})
		}
		wg.Wait()
	}
}
