package worker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
)

// ErrUnknownPool is returned by the Runtime's control methods for a queue
// without a pool.
var ErrUnknownPool = errors.New("worker: no pool for queue")

// overrides is the runtime's view of the overrides in effect.
type overrides struct {
	store queue.OverrideStore
	mu    sync.Mutex // serialises changes: save, then apply
}

// applyOverrides loads the saved overrides and applies them to the pools
// before they start. An override for a queue without a pool is logged and
// left in the store; one that no longer applies (a size above the bounds)
// is logged and skipped.
func (r *Runtime) applyOverrides(ctx context.Context) error {
	saved, err := r.ov.store.Load(ctx)
	if err != nil {
		return fmt.Errorf("worker: load pool overrides: %w", err)
	}
	queues := make([]string, 0, len(saved))
	for q := range saved {
		queues = append(queues, q)
	}
	sort.Strings(queues)
	for _, q := range queues {
		o := saved[q]
		p, ok := r.byQueue[q]
		if !ok {
			r.log.Warn("pool override for a queue without a pool, ignored", zap.String("queue", q))
			continue
		}
		if err := p.apply(o); err != nil {
			r.log.Warn("pool override not applied", zap.String("queue", q), zap.Error(err))
			continue
		}
		r.log.Info("pool override applied", zap.String("queue", q), zap.Bool("paused", o.Paused), zap.Int("size", o.Size))
	}
	return nil
}

// apply puts o into effect on p and shows it in p's stats.
func (p *Pool) apply(o queue.PoolOverride) error {
	size := p.cfg.Concurrency
	if o.Size > 0 {
		size = o.Size
	}
	if err := p.Resize(size); err != nil {
		return err
	}
	if o.Paused {
		p.Pause()
	} else {
		p.Resume()
	}
	if o.IsZero() {
		p.override.Store(nil)
	} else {
		p.override.Store(&o)
	}
	return nil
}

// Override returns the override in effect on p (zero: none).
func (p *Pool) Override() queue.PoolOverride {
	if o := p.override.Load(); o != nil {
		return *o
	}
	return queue.PoolOverride{}
}

// OverridesDurable reports whether pool overrides outlive the process.
func (r *Runtime) OverridesDurable() bool { return r.ov.store.Durable() }

// ControlPool changes the override of the pool of queue name with change (given the
// override in effect), saves it, then applies it: pause, resume and resize
// through the admin API. The result is the override now in effect.
func (r *Runtime) ControlPool(ctx context.Context, name string, change func(*queue.PoolOverride) error) (queue.PoolOverride, error) {
	p, ok := r.byQueue[name]
	if !ok {
		return queue.PoolOverride{}, fmt.Errorf("%w %q", ErrUnknownPool, name)
	}
	r.ov.mu.Lock()
	defer r.ov.mu.Unlock()
	o := p.Override()
	if err := change(&o); err != nil {
		return p.Override(), err
	}
	if o.Size != 0 && (o.Size < 1 || o.Size > MaxConcurrency) {
		return p.Override(), fmt.Errorf("%w and at most %d (got %d)", ErrInvalidSize, MaxConcurrency, o.Size)
	}
	if err := r.ov.store.Save(ctx, name, o); err != nil {
		return p.Override(), fmt.Errorf("worker: save override of pool %q: %w", name, err)
	}
	if err := p.apply(o); err != nil {
		return p.Override(), err
	}
	return o, nil
}

// State returns the state of the pool's component: running, paused,
// degraded, draining, stopped.
func (p *Pool) State() lifecycle.State { return p.comp.State() }
