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

// The housekeeper: it extends the leases of running handlers at about
// half-life and runs the stall check, until the workers are done (so
// handlers finishing during the drain keep their leases).

// housekeep runs the housekeeper. A backend call of its own (an Extend,
// the stall check's Stats) that ends its goroutine with runtime.Goexit,
// which nothing can recover, is a failed call (logged by backendCall): a
// new housekeeper takes over. Left alone, the pool would have extended
// no lease again (its long handlers' tasks delivered again while they
// run) and Stop would have named the extension as still running.
func (p *Pool) housekeep() {
	replaceOnGoexit(&p.stop.housekeeper, p.housekeepLoop, p.housekeep)
}

// replaceOnGoexit runs loop, the body of a pool goroutine counted in wg,
// and then marks it done in wg. A loop that ends the goroutine with
// runtime.Goexit (a backend call of its own did, which nothing can
// recover; backendCall has counted it) is replaced: wg counts the new
// goroutine, run by again, before it lets this one go, so whoever waits
// on wg waits for the new one too. A panic goes on: the backend's calls
// are guarded, so it is not theirs.
func replaceOnGoexit(wg *sync.WaitGroup, loop, again func()) {
	returned := false
	defer func() {
		if !returned {
			if r := recover(); r != nil {
				panic(r)
			}
			wg.Add(1)
			go again()
		}
		wg.Done()
	}()
	loop()
	returned = true
}

func (p *Pool) housekeepLoop() {
	extendEvery := p.extendEvery
	checkEvery := min(max(p.cfg.StallAfter/2, 10*time.Millisecond), 30*time.Second)
	ext := time.NewTicker(extendEvery)
	defer ext.Stop()
	chk := time.NewTicker(checkEvery)
	defer chk.Stop()
	for {
		select {
		case <-p.stop.hkStop:
			return
		case now := <-ext.C:
			p.extendLeases(now)
		case <-chk.C:
			ctx, cancel := context.WithTimeout(p.extendCtx, checkEvery)
			_ = p.Check(ctx)
			cancel()
		}
	}
}

func (p *Pool) extendLeases(nowT time.Time) {
	now := p.onClock(nowT)
	p.mu.Lock()
	slots := append([]*slot(nil), p.slots...)
	p.mu.Unlock()
	for _, s := range slots {
		s.mu.Lock()
		d := s.d
		due := d != nil && !s.settled && now >= s.extendAt
		overrun := due && s.keepUntil != 0 && now > s.keepUntil
		first := overrun && !s.overrun
		if overrun {
			s.overrun, due = true, false
		} else if due {
			s.extendAt = now + p.cfg.Lease/2
		}
		s.mu.Unlock()
		if first {
			// The handler ran past its timeout by a lease period and
			// ignores its cancellation. Its worker stays with it (a
			// goroutine cannot be stopped); its task is not held for ever
			// but delivered again once the lease ends, another attempt
			// that max attempts bound. Its late settlement then fails.
			p.log.Warn("handler ignores the cancellation of its timeout: its lease is no longer extended, the task is delivered again when it ends",
				zap.String("task", d.Task.ID), zap.String("kind", d.Task.Kind), zap.Int("attempt", d.Task.Attempt),
				zap.Time("lease_until", d.LeaseUntil))
		}
		if !due {
			continue
		}
		err := p.extend(d)
		if err != nil && s.unsettled(d) {
			// (Settled meanwhile: the ack or retry won the race, and the
			// lease is no longer needed.)
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
	last := max(p.n.lastFinished.Load(), p.started.Load())
	quiet := p.clock() - time.Duration(last)
	if quiet <= p.cfg.StallAfter {
		p.clearStall()
		return nil
	}
	var st queue.Stats
	err := p.backendCall(opStats, nil, func() (err error) {
		st, err = p.backend.Stats(ctx, p.queue)
		return err
	})
	if err != nil {
		return fmt.Errorf("worker: pool %q: stats: %w", p.queue, err)
	}
	buffered := int64(len(p.work))
	if st.Ready+buffered == 0 {
		p.clearStall()
		return nil
	}
	err = fmt.Errorf("%w: %d tasks wait (%d ready in queue %q, %d leased for a busy worker) but nothing finished for %s (in flight %d)",
		ErrStalled, st.Ready+buffered, st.Ready, p.queue, buffered, quiet.Round(time.Millisecond), p.n.inFlight.Load())
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
		healthy := p.healthyLocked()
		p.mu.Unlock()
		if running {
			p.comp.Set(healthy, nil)
		}
	}
}

// extend extends the lease of d for the housekeeper, bounded by Stop's
// ctx too (see extendCtx), and counted as running while it does: Stop
// names it while it runs past Stop's ctx.
func (p *Pool) extend(d *queue.Delivery) error {
	defer p.stop.running.begin(extensions, 1)()
	ctx, cancel := context.WithTimeout(p.extendCtx, p.cfg.Lease/2)
	defer cancel()
	return p.backendCall(opExtend, d.Task, func() error { return p.backend.Extend(ctx, d, p.cfg.Lease) })
}
