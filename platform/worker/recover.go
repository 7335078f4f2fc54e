package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/internal/sleep"
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
// while the fetcher's Lease waits, the pool probes it.
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

// probeEvery is the pause before each probe of a degraded pool's backend
// (the first one included: a Lease that returns tasks at once needs
// none); probeTimeout bounds one probe; maxWatchPeriod bounds the pause
// between the probes of a healthy pool.
var (
	probeEvery     = time.Second
	probeTimeout   = 5 * time.Second
	maxWatchPeriod = 5 * time.Second
)

// watchPeriod is the pause before each probe of a pool that is failing or
// not.
func (p *Pool) watchPeriod(failing bool) time.Duration {
	if failing {
		return probeEvery
	}
	return min(max(p.cfg.UnreachableAfter/2, time.Millisecond), maxWatchPeriod)
}

// watchLease starts watching the backend, when it is a queue.Prober,
// while the fetcher's Lease under ctx (the lease ctx) waits; failing says
// whether the pool is degraded by a failed Lease or by earlier probes.
// The returned func stops the watch, waits for it, and reports whether
// the pool is failing now: a probe that reached the queue made a failing
// pool healthy again, probes that failed for UnreachableAfter degraded a
// healthy one. The fetcher owns the watch and stops it once its Lease
// returned, before it records any new failure, so that a probe's success
// never hides a later failure.
func (p *Pool) watchLease(ctx context.Context, failing bool) (stop func() (failing bool)) {
	pr, ok := p.backend.(queue.Prober)
	if !ok {
		return func() bool { return failing }
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { failing = p.watch(ctx, pr, failing) })
	return func() bool {
		cancel()
		wg.Wait()
		return failing
	}
}

// watch probes pr until ctx ends (see watchLease) and returns whether the
// pool is failing then.
func (p *Pool) watch(ctx context.Context, pr queue.Prober, failing bool) bool {
	var since time.Time // when the probes of a healthy pool began to fail
	for sleep.For(ctx.Done(), p.watchPeriod(failing)) {
		start := time.Now()
		err := p.probe(ctx, pr)
		switch {
		case err == nil:
			since = time.Time{}
			if failing && p.recovered() {
				failing = false
			}
		case ctx.Err() != nil:
			return failing // the Lease returned: this probe was cut short
		case failing:
			p.log.Debug("lease: backend still unreachable", zap.Error(err))
		default:
			if since.IsZero() {
				since = start
			}
			if d := time.Since(since); d >= p.cfg.UnreachableAfter {
				failing = p.unreachable(ctx, d, err)
			} else {
				p.log.Debug("lease: probe of the backend failed", zap.Error(err))
			}
		}
	}
	return failing
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
