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

// ErrOverrideNotApplied is wrapped by ControlPool's error when the pool
// could not put the changed override into effect: nothing changed,
// neither the pool nor the saved overrides.
var ErrOverrideNotApplied = errors.New("worker: pool override not applied (nothing changed)")

// ErrOverrideNotSaved is wrapped by ControlPool's error when the
// override store did not save the change: the pool was put back as it
// was, so the change is in effect nowhere (unless the error wraps
// queue.ErrOutcomeUnknown too: then the store may hold it).
var ErrOverrideNotSaved = errors.New("worker: pool override not saved")

// overrides is the runtime's view of the overrides in effect.
type overrides struct {
	store queue.OverrideStore
	mu    sync.Mutex // serialises changes: apply, then save
	// applyFault, set by tests only, fails an apply before it changes
	// the pool.
	applyFault func(queue string, o queue.PoolOverride) error
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
// override in effect), applies it, then saves it: pause, resume and resize
// through the admin API. The result is the override now in effect, and
// nil is returned only when the change is both in effect and saved.
//
// Applying comes first because it is local and can be undone, and the
// store is shared: replicas of a host read it when they start. A change
// the pool cannot apply is saved nowhere (ErrOverrideNotApplied); one the
// store does not save is undone on the pool (ErrOverrideNotSaved), so a
// failure means the change is in effect nowhere. Saving first would let a
// change reported failed take effect at the next restart or on other
// replicas, and undoing a save could overwrite a change another replica
// saved meanwhile. A crash between the two steps leaves the store as it
// was, and the change ends with the process. When the store cannot say
// whether it saved the change (its error wraps queue.ErrOutcomeUnknown),
// the pool is put back too, and the error says the store may hold it.
func (r *Runtime) ControlPool(ctx context.Context, name string, change func(*queue.PoolOverride) error) (queue.PoolOverride, error) {
	p, ok := r.byQueue[name]
	if !ok {
		return queue.PoolOverride{}, fmt.Errorf("%w %q", ErrUnknownPool, name)
	}
	r.ov.mu.Lock()
	defer r.ov.mu.Unlock()
	prev := p.Override()
	o := prev
	if err := change(&o); err != nil {
		return prev, err
	}
	if o.Size != 0 && (o.Size < 1 || o.Size > MaxConcurrency) {
		return prev, fmt.Errorf("%w and at most %d (got %d)", ErrInvalidSize, MaxConcurrency, o.Size)
	}
	if err := r.applyTo(p, o); err != nil {
		return p.Override(), fmt.Errorf("%w: pool %q: %w", ErrOverrideNotApplied, name, err)
	}
	serr := r.ov.store.Save(ctx, name, o)
	if serr == nil {
		return o, nil
	}
	// Undo: prev was in effect a moment ago, so it applies.
	if err := p.apply(prev); err != nil {
		return p.Override(), fmt.Errorf("%w: pool %q: %w; and putting the previous override back failed, so the change is in effect on this process (until it restarts) though not saved: %w",
			ErrOverrideNotSaved, name, serr, err)
	}
	if errors.Is(serr, queue.ErrOutcomeUnknown) {
		return prev, fmt.Errorf("worker: pool %q: the override store may or may not have saved the change (%w); the pool was put back as it was; repeat the change to make sure",
			name, serr)
	}
	return prev, fmt.Errorf("%w: pool %q: %w; the pool was put back as it was: the change is in effect nowhere", ErrOverrideNotSaved, name, serr)
}

// applyTo applies o to p, failing first when a test armed applyFault.
func (r *Runtime) applyTo(p *Pool, o queue.PoolOverride) error {
	if f := r.ov.applyFault; f != nil {
		if err := f(p.Queue(), o); err != nil {
			return err
		}
	}
	return p.apply(o)
}

// State returns the state of the pool's component: running, paused,
// degraded, draining, stopped.
func (p *Pool) State() lifecycle.State { return p.comp.State() }
