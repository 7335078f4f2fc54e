package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
)

// Watching a waiting Lease. The pool learns that leasing fails when a
// Lease returns an error, and that it works when a Lease returns tasks.
// On an empty queue a Lease blocks instead, which says nothing: it blocks
// as well on a backend whose requests wait out an outage (JetStream waits
// for the reconnect, setting the queue up or fetching), so a pool whose
// server went away would show running while no task can be leased, and
// neither its blocking nor a Lease cut short by a deadline tells "idle"
// from "unreachable". A backend that is a queue.Prober says so itself:
// while the fetcher's Lease waits, the pool's watcher probes it.
//
//   - A healthy pool probes every watchPeriod (UnreachableAfter/2, at
//     most 5s). Once its probes failed for UnreachableAfter, none
//     reaching the queue in between, the pool is degraded with the
//     probe's error. One failed probe, or a slow one that still
//     answers within probeTimeout, degrades nothing.
//   - A degraded pool (a failed Lease, or the probes) probes every
//     probeEvery, and the first probe that reaches the queue makes it
//     healthy again; a probe that fails or times out changes nothing.
//
// A backend without Probe keeps a pool degraded by a failed Lease until a
// Lease returns tasks, and cannot degrade one whose Lease only waits.
//
// The watcher is one goroutine per pool (owned like the fetcher, ended by
// Stop); the fetcher tells it when each Lease begins and ends (leaseWatch),
// which costs a busy pool a lock and a non-blocking send per Lease. A
// probe's result applies only to the Lease it began in, while that Lease
// still waits: the fetcher, once its Lease returned, records a failure of
// it after any probe, so a probe's success never hides a later failure.

// probeEvery is the pause before each probe of a degraded pool's backend
// (the first one included: a Lease that returns tasks at once needs
// none); probeTimeout bounds one probe; maxWatchPeriod bounds the pause
// between the probes of a healthy pool.
var (
	probeEvery     = time.Second
	probeTimeout   = 5 * time.Second
	maxWatchPeriod = 5 * time.Second
)

// leaseWatch is what the fetcher and the watcher share about the Lease in
// progress.
type leaseWatch struct {
	wake chan struct{} // a Lease began

	mu      sync.Mutex
	leasing bool            // a Lease waits
	gen     uint64          // counts Leases
	ctx     context.Context // the waiting Lease's ctx (the lease ctx)
	next    time.Time       // when to probe next
	failing bool            // degraded by a failed Lease or by the probes
	since   time.Time       // when the probes of a healthy pool began to fail (zero: they did not)
	// sleeps is when the watcher wakes up on its own (zero: it waits
	// for wake). A Lease wakes it only if it must probe before then: a
	// busy pool, whose Leases return at once, wakes it at most once a
	// watchPeriod.
	sleeps time.Time
}

// watchPeriod is the pause before each probe of a pool that is failing or
// not.
func (p *Pool) watchPeriod(failing bool) time.Duration {
	if failing {
		return probeEvery
	}
	return min(max(p.cfg.UnreachableAfter/2, time.Millisecond), maxWatchPeriod)
}

// leaseBegins tells the watcher that the fetcher's Lease under ctx (the
// lease ctx) begins, the pool failing or not.
func (p *Pool) leaseBegins(ctx context.Context, failing bool) {
	w := &p.lw
	w.mu.Lock()
	w.leasing, w.ctx, w.failing = true, ctx, failing
	w.gen++
	w.next = time.Now().Add(p.watchPeriod(failing))
	w.since = time.Time{}
	wake := w.sleeps.IsZero() || w.next.Before(w.sleeps)
	w.mu.Unlock()
	if wake {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// leaseEnds tells the watcher that the fetcher's Lease returned, and
// reports whether the pool is failing now: a probe that reached the queue
// made a failing pool healthy again, probes that failed for
// UnreachableAfter degraded a healthy one. No probe result applies after
// it.
func (p *Pool) leaseEnds() (failing bool) {
	w := &p.lw
	w.mu.Lock()
	defer w.mu.Unlock()
	w.leasing, w.ctx = false, nil
	return w.failing
}

// watchLeases is the watcher: it probes pr while a Lease waits (see
// above), until Stop begins. A Probe that ends its goroutine with
// runtime.Goexit, which nothing can recover, is a failed probe (logged by
// backendCall): a new watcher takes over. Left alone, the pool would
// have probed no more: degraded by a failed Lease, it stayed so while
// its next Lease waited, and an unreachable backend no longer degraded
// it.
func (p *Pool) watchLeases(pr queue.Prober) {
	replaceOnGoexit(&p.stop.fetcher, func() { p.watchLoop(pr) }, func() { p.watchLeases(pr) })
}

func (p *Pool) watchLoop(pr queue.Prober) {
	w := &p.lw
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		w.mu.Lock()
		leasing, gen, ctx, next := w.leasing, w.gen, w.ctx, w.next
		wait := time.Until(next)
		switch {
		case !leasing:
			w.sleeps = time.Time{}
		case wait > 0:
			w.sleeps = next
		}
		w.mu.Unlock()
		if !leasing || wait > 0 {
			if leasing {
				timer.Reset(wait)
			}
			select {
			case <-p.stop.ch:
				return
			case <-w.wake:
				timer.Stop()
			case <-timer.C:
			}
			continue
		}
		start := time.Now()
		err := p.probe(ctx, pr)
		w.mu.Lock()
		if w.leasing && w.gen == gen {
			p.probed(ctx, start, err)
			w.next = time.Now().Add(p.watchPeriod(w.failing))
		}
		w.mu.Unlock()
	}
}

// probed applies the result err of a probe that began at start while the
// Lease under ctx waits. p.lw.mu held.
func (p *Pool) probed(ctx context.Context, start time.Time, err error) {
	w := &p.lw
	switch {
	case err == nil:
		w.since = time.Time{}
		if w.failing && p.recovered() {
			w.failing = false
		}
	case ctx.Err() != nil:
		// Paused or stopping: this probe was cut short.
	case w.failing:
		p.log.Debug("lease: backend still unreachable", zap.Error(err))
	default:
		if w.since.IsZero() {
			w.since = start
		}
		if d := time.Since(w.since); d >= p.cfg.UnreachableAfter {
			w.failing = p.unreachable(ctx, d, err)
		} else {
			p.log.Debug("lease: probe of the backend failed", zap.Error(err))
		}
	}
}

// probe runs one Probe of the pool's queue, bounded by probeTimeout and
// guarded like every backend call.
func (p *Pool) probe(ctx context.Context, pr queue.Prober) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	return p.backendCall(opProbe, nil, func() error { return pr.Probe(ctx, p.queue) })
}

// unreachable degrades a running pool whose probes failed for d (err the
// last one's error) while its Lease under ctx waits, and reports whether
// it did: a pool whose Lease ended meanwhile (paused, stopping) is left
// as Pause or Stop set it.
func (p *Pool) unreachable(ctx context.Context, d time.Duration, err error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateRunning || ctx.Err() != nil {
		return false
	}
	d = d.Round(time.Millisecond)
	p.setLastError(err)
	p.log.Warn("lease: backend unreachable, pool degraded", zap.Duration("for", d), zap.Error(err))
	p.comp.Set(lifecycle.Degraded, fmt.Errorf("lease: backend unreachable for %s: %w", d, err))
	return true
}

// recovered makes a running pool healthy again (running, or paused) after
// a probe reached its queue, unless it is stalled (Check), and reports
// whether the lease failure is over: a stopping pool is left as Stop set
// it.
func (p *Pool) recovered() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateRunning {
		return false
	}
	if p.stalled.Load() {
		return true // degraded for the stall until it clears (clearStall)
	}
	p.comp.Set(p.healthyLocked(), nil)
	p.log.Info("lease: backend reachable again, pool healthy")
	return true
}
