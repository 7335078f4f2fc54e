package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// Errors of the pool's control API.
var (
	// ErrPoolStopped is returned by Start after Stop.
	ErrPoolStopped = errors.New("worker: pool stopped")
	// ErrStalled is wrapped by Check's error when work waits but nothing
	// finished for longer than StallAfter.
	ErrStalled = errors.New("worker: pool stalled")
	// ErrInvalidSize is returned by Resize for a size below 1 (use Pause
	// to stop taking work) or above MaxConcurrency.
	ErrInvalidSize = errors.New("worker: pool size must be at least 1")
)

// ComponentPrefix prefixes each pool's lifecycle component name:
// "pool/<queue>".
const ComponentPrefix = "pool/"

// Releaser is the method a pool uses to give a delivery back without
// counting its attempt.
//
// Deprecated: Release is part of queue.Consumer; every backend has it.
type Releaser interface {
	Release(ctx context.Context, d *queue.Delivery) error
}

// PoolParams are the parts of a Pool.
type PoolParams struct {
	// Queue is the queue the pool consumes. Required.
	Queue string
	// Config is the pool's settings; zero fields take defaults.
	Config PoolConfig
	// Backend is the queue backend. Required.
	Backend queue.Backend
	// Router maps kinds to handlers. Required.
	Router *Router
	// Completions routes completions back to sources; nil means none (a
	// task asking for a completion is settled all the same, and the
	// failed completion counted).
	Completions *source.Completions
	// Observer sees each delivery; nil means task.NopObserver.
	Observer task.Observer
	// Logger logs failures; nil discards.
	Logger *zap.Logger
	// Registry receives the pool's component "pool/<queue>"; nil means a
	// private registry.
	Registry *lifecycle.Registry
}

// Pool is the supervised worker pool of one queue: it leases deliveries
// in batches (at most Concurrency + BatchSize at a time), runs each
// through recover → timeout → observer → handler, settles it (ack, retry
// with back-off, dead letter) and, once the backend confirmed the
// settlement, tells the task's source.
//
// Pool states: Start starts it; Pause/Resume stop and resume leasing;
// Resize changes the number of workers; Stop drains. All methods are safe
// for concurrent use.
//
// The pool's code reads by concept: lease.go leases and buffers
// deliveries, workers.go runs the worker goroutines, exec.go executes one
// delivery, settle.go settles it, complete.go tells its source,
// housekeep.go extends leases and checks for stalls, stop.go drains;
// backend.go guards every call into the backend against its panics.
type Pool struct {
	epoch   time.Time // the pool's clock: monotonic time since epoch
	queue   string
	cfg     PoolConfig
	backend queue.Backend
	router  *Router
	comps   *source.Completions
	obs     task.Observer
	log     *zap.Logger
	comp    *lifecycle.Component

	n        counters                           // stats.go
	override atomic.Pointer[queue.PoolOverride] // overrides.go
	started  atomic.Int64                       // p.clock() at Start
	stalled  atomic.Bool

	// Leasing and the hand-over buffer (lease.go).
	leased atomic.Int64 // reserved or leased deliveries not yet finished
	wake   chan struct{}
	work   chan *queue.Delivery
	lw     leaseWatch // recover.go

	// Workers (workers.go).
	halted   atomic.Bool  // paused or stopping: workers start no new delivery
	target   atomic.Int64 // desired workers
	workersN atomic.Int64 // live workers
	kick     atomic.Pointer[chan struct{}]

	mu          sync.Mutex
	state       poolState
	paused      bool
	slots       []*slot
	leaseCtx    context.Context
	leaseCancel context.CancelFunc
	hardCtx     context.Context // parent of every handler context
	hardCancel  context.CancelFunc

	// Lease extension (housekeep.go): extendEvery is the housekeeper's
	// period; a delivery whose lease has no more than renewBelow left when
	// a worker takes it is extended before its handler starts. extendCtx
	// is the parent of every extension; Stop cancels it.
	extendEvery, renewBelow time.Duration
	extendCtx               context.Context
	extendCancel            context.CancelFunc
	// grace is stopGrace (tests lengthen it, see SetStopGrace).
	grace time.Duration
	// settling is the parent of every settlement call (settleCtx); it
	// ends with Stop's ctx, so a settlement in progress when Stop began
	// (bounded only by the lease before) ends with it too.
	settling     context.Context
	settlingStop context.CancelFunc

	stop stopping // stop.go
}

type poolState int

const (
	stateNew poolState = iota
	stateRunning
	stateStopping
	stateStopped
)

// NewPool returns a pool that is not started yet.
func NewPool(p PoolParams) (*Pool, error) {
	if p.Queue == "" {
		return nil, errors.New("worker: pool needs a queue name")
	}
	if p.Backend == nil || p.Router == nil {
		return nil, fmt.Errorf("worker: pool %q needs a backend and a router", p.Queue)
	}
	if err := p.Config.Validate(); err != nil {
		return nil, fmt.Errorf("worker: pool %q config: %w", p.Queue, err)
	}
	cfg := p.Config.WithDefaults()
	if p.Observer == nil {
		p.Observer = task.NopObserver{}
	}
	if p.Logger == nil {
		p.Logger = zap.NewNop()
	}
	if p.Registry == nil {
		p.Registry = lifecycle.NewRegistry(nil, nil)
	}
	comp, err := p.Registry.Register(ComponentPrefix+p.Queue, lifecycle.StayDegraded, lifecycle.NeverFails())
	if err != nil {
		return nil, fmt.Errorf("worker: pool %q: %w", p.Queue, err)
	}
	pl := &Pool{
		epoch:   time.Now(),
		queue:   p.Queue,
		cfg:     cfg,
		backend: p.Backend,
		router:  p.Router,
		comps:   p.Completions,
		obs:     p.Observer,
		log:     p.Logger.With(zap.String("queue", p.Queue)),
		comp:    comp,
		wake:    make(chan struct{}, 1),
		work:    make(chan *queue.Delivery, cfg.Concurrency+cfg.BatchSize),
	}
	pl.stop.init()
	pl.lw.wake = make(chan struct{}, 1)
	pl.extendCtx, pl.extendCancel = context.WithCancel(context.Background())
	pl.settling, pl.settlingStop = context.WithCancel(context.Background())
	pl.extendEvery = min(max(cfg.Lease/4, time.Millisecond), 5*time.Second)
	pl.renewBelow = max(cfg.Lease/2, pl.extendEvery)
	pl.grace = stopGrace
	pl.target.Store(int64(cfg.Concurrency))
	k := make(chan struct{})
	pl.kick.Store(&k)
	comp.SetDetails(func() any { return pl.Stats() })
	return pl, nil
}

// clock returns the time since the pool's epoch from the monotonic clock
// alone (cheaper than time.Now on the per-task path).
func (p *Pool) clock() time.Duration { return time.Since(p.epoch) }

// onClock returns t, a time with a monotonic reading (time.Now, a
// ticker's), on the pool's clock: the time since its epoch.
func (p *Pool) onClock(t time.Time) time.Duration { return t.Sub(p.epoch) }

// leaseOnClock returns a delivery's lease end t on the pool's clock,
// where now is start. A t with a monotonic reading (the backend read the
// clock in this process) is read on it, as Pool.clock. One without is a
// wall time (from a server, a database): it is read against the wall
// clock now, never against the epoch's wall reading, which the wall clock
// leaves behind when it steps (NTP) or runs on while the monotonic clock
// stops (suspend). It saturates instead of wrapping.
func (p *Pool) leaseOnClock(t time.Time, start time.Duration) time.Duration {
	if t == t.Round(0) { // no monotonic reading (Round(0) strips it)
		left := t.Sub(time.Now())
		if left > math.MaxInt64-start {
			return math.MaxInt64
		}
		return start + left
	}
	return t.Sub(p.epoch)
}

// Queue returns the pool's queue name.
func (p *Pool) Queue() string { return p.queue }

// Config returns the pool's resolved settings.
func (p *Pool) Config() PoolConfig { return p.cfg }

// Start starts the workers, the fetcher and the housekeeper (lease
// extension, stall check) and returns at once. Handler contexts derive
// from context.Background; ctx only bounds Start. Starting a running pool
// does nothing; starting a stopped one returns ErrPoolStopped.
func (p *Pool) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("worker: start pool %q: %w", p.queue, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.state {
	case stateRunning:
		return nil
	case stateStopping, stateStopped:
		return fmt.Errorf("worker: start pool %q: %w", p.queue, ErrPoolStopped)
	}
	p.state = stateRunning
	// Halted is what Pause and Resume made it before Start only if they
	// came in that order: a Resume before Start leaves it set (Resume
	// clears it on a running pool only), and the pool would give back
	// every delivery it leased. Started, the pool is halted while paused.
	p.halted.Store(p.paused)
	p.started.Store(int64(p.clock()))
	p.hardCtx, p.hardCancel = context.WithCancel(context.Background())
	p.newLeaseCtxLocked()
	for i := int64(0); i < p.target.Load(); i++ {
		p.spawnLocked(&slot{})
	}
	p.stop.fetcher.Add(1)
	p.stop.running.n[fetching].Store(1)
	go p.fetch()
	if pr, ok := p.backend.(queue.Prober); ok {
		p.stop.fetcher.Add(1)
		go p.watchLeases(pr) // recover.go
	}
	p.stop.housekeeper.Add(1)
	go p.housekeep()
	p.comp.Set(p.healthyLocked(), nil)
	return nil
}

// healthyLocked is the component state of a working pool: Paused while
// paused, else Running.
func (p *Pool) healthyLocked() lifecycle.State {
	if p.paused {
		return lifecycle.Paused
	}
	return lifecycle.Running
}

func (p *Pool) newLeaseCtxLocked() {
	if p.leaseCancel != nil {
		p.leaseCancel()
	}
	p.leaseCtx, p.leaseCancel = context.WithCancel(context.Background())
}

// Pause stops leasing new work; running handlers finish normally. A
// Lease call in progress is interrupted, and the deliveries waiting in the
// hand-over buffer go back to the queue.
func (p *Pool) Pause() {
	p.mu.Lock()
	if p.paused {
		p.mu.Unlock()
		return
	}
	p.paused = true
	p.halted.Store(true)
	if p.leaseCancel != nil {
		p.leaseCancel()
	}
	if p.state == stateRunning {
		p.comp.Set(lifecycle.Paused, nil)
	}
	// A stopping pool gives its buffer back itself (shutdown); otherwise
	// Stop, should it begin meanwhile, waits for this Pause's give-backs
	// (counted before Stop can change the state, see stopping.pauses).
	stopping := p.state == stateStopping || p.state == stateStopped
	if !stopping {
		p.stop.pauses.Add(1)
	}
	p.mu.Unlock()
	p.log.Info("pool paused")
	if stopping {
		return
	}
	defer p.stop.pauses.Done()
	// After halted is set: what the fetcher hands over from now on is
	// returned by the fetcher itself (see fetch).
	p.returnBuffered()
}

// Resume undoes Pause.
func (p *Pool) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		return
	}
	p.paused = false
	if p.state == stateRunning {
		p.halted.Store(false)
		p.newLeaseCtxLocked()
		if st := p.comp.State(); st == lifecycle.Paused {
			p.comp.Set(lifecycle.Running, nil)
		}
	}
	p.signal()
	p.log.Info("pool resumed")
}

// Paused reports whether the pool is paused.
func (p *Pool) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// Resize sets the number of workers to n (at least 1, at most
// MaxConcurrency). Growing starts workers at once; shrinking lets surplus
// workers exit when they finish their current task, so nothing in flight
// is lost.
func (p *Pool) Resize(n int) error {
	if n < 1 {
		return fmt.Errorf("%w (got %d)", ErrInvalidSize, n)
	}
	if n > MaxConcurrency {
		return fmt.Errorf("%w and at most %d (got %d)", ErrInvalidSize, MaxConcurrency, n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.target.Swap(int64(n))
	if p.state == stateRunning {
		for live := p.workersN.Load(); live < int64(n); live++ {
			p.spawnLocked(&slot{})
		}
		if int64(n) < old {
			// Wake idle workers so the surplus notices.
			k := make(chan struct{})
			close(*p.kick.Swap(&k))
		}
	}
	p.signal()
	p.log.Info("pool resized", zap.Int64("from", old), zap.Int("to", n))
	return nil
}
