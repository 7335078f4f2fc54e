package worker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/lifecycle"
)

// PoolOverride is what an operator changed on a pool at run time (through
// the admin API), kept beyond a restart when the runtime has a durable
// OverrideStore. A zero field changes nothing.
type PoolOverride struct {
	// Paused keeps the pool paused.
	Paused bool `json:"paused,omitempty"`
	// Size is the number of workers instead of the configured
	// concurrency (0: the configured one).
	Size int `json:"size,omitempty"`
}

// IsZero reports whether o changes nothing.
func (o PoolOverride) IsZero() bool { return !o.Paused && o.Size == 0 }

// OverrideStore keeps the pools' overrides. The runtime loads them when
// its pools start and applies them before any pool leases; every change
// through the Runtime's control methods is saved before it is applied.
type OverrideStore interface {
	// Load returns every saved override by queue.
	Load(ctx context.Context) (map[string]PoolOverride, error)
	// Save keeps o as queue's override (a zero o deletes it).
	Save(ctx context.Context, queue string, o PoolOverride) error
	// Durable reports whether the overrides outlive the process.
	Durable() bool
}

// ErrUnknownPool is returned by the Runtime's control methods for a queue
// without a pool.
var ErrUnknownPool = errors.New("worker: no pool for queue")

// MemoryOverrides is an OverrideStore that keeps the overrides in the
// process only (not durable): the default of a runtime without a store.
type MemoryOverrides struct {
	mu sync.Mutex
	m  map[string]PoolOverride
}

// Load returns a copy of the overrides.
func (s *MemoryOverrides) Load(context.Context) (map[string]PoolOverride, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]PoolOverride, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out, nil
}

// Save keeps o for queue.
func (s *MemoryOverrides) Save(_ context.Context, queue string, o PoolOverride) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]PoolOverride{}
	}
	if o.IsZero() {
		delete(s.m, queue)
	} else {
		s.m[queue] = o
	}
	return nil
}

// Durable is false: the overrides end with the process.
func (*MemoryOverrides) Durable() bool { return false }

// overrides is the runtime's view of the overrides in effect.
type overrides struct {
	store OverrideStore
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
func (p *Pool) apply(o PoolOverride) error {
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
func (p *Pool) Override() PoolOverride {
	if o := p.override.Load(); o != nil {
		return *o
	}
	return PoolOverride{}
}

// OverridesDurable reports whether pool overrides outlive the process.
func (r *Runtime) OverridesDurable() bool { return r.ov.store.Durable() }

// ControlPool changes the override of queue's pool with change (given the
// override in effect), saves it, then applies it: pause, resume and resize
// through the admin API. The result is the override now in effect.
func (r *Runtime) ControlPool(ctx context.Context, queue string, change func(*PoolOverride) error) (PoolOverride, error) {
	p, ok := r.byQueue[queue]
	if !ok {
		return PoolOverride{}, fmt.Errorf("%w %q", ErrUnknownPool, queue)
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
	if err := r.ov.store.Save(ctx, queue, o); err != nil {
		return p.Override(), fmt.Errorf("worker: save override of pool %q: %w", queue, err)
	}
	if err := p.apply(o); err != nil {
		return p.Override(), err
	}
	return o, nil
}

// State returns the state of the pool's component: running, paused,
// degraded, draining, stopped.
func (p *Pool) State() lifecycle.State { return p.comp.State() }
