package worker

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/internal/sleep"
	"github.com/plba/plba/platform/queue"
)

// Recovery of a pool degraded by a failed Lease. The pool learns that
// leasing works again when a Lease returns tasks; on an empty queue the
// next Lease blocks instead, which says nothing: it blocks as well on a
// backend whose requests wait out a reconnect (JetStream), so neither its
// blocking nor a Lease cut short by a deadline tells "idle" from
// "unreachable". A backend that is a queue.Prober says so itself: while
// the fetcher's Lease after a failure waits, the pool probes it every
// probeEvery, and the first probe that reaches the queue makes the pool
// healthy again; a probe that fails or times out changes nothing, so a
// pool whose backend is still unreachable stays degraded. A backend
// without Probe keeps the pool degraded until a Lease returns tasks.

// probeEvery is the pause before each probe of a degraded pool's backend
// (the first one included: a Lease that returns tasks at once needs
// none); probeTimeout bounds one probe.
var (
	probeEvery   = time.Second
	probeTimeout = 5 * time.Second
)

// watchRecovery starts probing the backend, when it is a queue.Prober,
// while the fetcher's Lease under ctx (the lease ctx) waits after a
// failed one. The returned func stops the probing, waits for it, and
// reports whether a probe reached the queue (the pool was then made
// healthy again). The fetcher owns the prober and calls it once its Lease
// returned, before it records any new failure, so that a probe's success
// never hides a later failure.
func (p *Pool) watchRecovery(ctx context.Context) (stop func() (recovered bool)) {
	pr, ok := p.backend.(queue.Prober)
	if !ok {
		return func() bool { return false }
	}
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg        sync.WaitGroup
		recovered bool
	)
	wg.Go(func() {
		for sleep.For(ctx.Done(), probeEvery) {
			err := p.probe(ctx, pr)
			if err == nil {
				recovered = p.recovered()
				return
			}
			if ctx.Err() != nil {
				return
			}
			p.log.Debug("lease: backend still unreachable", zap.Error(err))
		}
	})
	return func() bool {
		cancel()
		wg.Wait()
		return recovered
	}
}

// probe runs one Probe of the pool's queue, bounded by probeTimeout and
// guarded like every backend call.
func (p *Pool) probe(ctx context.Context, pr queue.Prober) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	return p.backendCall(opProbe, nil, func() error { return pr.Probe(ctx, p.queue) })
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
