package worker

import (
	"context"
	"errors"
	"fmt"
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
	// to stop taking work).
	ErrInvalidSize = errors.New("worker: pool size must be at least 1")
)

// ComponentPrefix prefixes each pool's lifecycle component name:
// "pool/<queue>".
const ComponentPrefix = "pool/"

// Releaser is an optional interface of a queue backend: Release puts a
// leased delivery back, visible at once, without counting the attempt.
// A pool that stops before a handler finished uses it; without it the
// pool falls back to Retry at now (which counts the attempt).
type Releaser interface {
	Release(ctx context.Context, d *queue.Delivery) error
}

// Stats are the counters of a pool; they are also its lifecycle
// component's details.
type Stats struct {
	Queue string `json:"queue"`
	// Processed counts settled deliveries (any outcome).
	Processed int64 `json:"processed"`
	// Succeeded counts acked deliveries.
	Succeeded int64 `json:"succeeded"`
	// Failed counts failed handler runs (errors, panics, timeouts,
	// failed completions) and deliveries whose settlement panicked or
	// whose worker crashed.
	Failed int64 `json:"failed"`
	// Retried counts deliveries scheduled again.
	Retried int64 `json:"retried"`
	// Dead counts dead-lettered deliveries.
	Dead int64 `json:"dead"`
	// Returned counts deliveries put back unsettled (at stop, or taken
	// from the hand-over buffer while paused).
	Returned int64 `json:"returned"`
	// Expired counts deliveries skipped because their lease ended (or
	// could not be extended) while they waited for a worker (the backend
	// delivers them again, as a new attempt).
	Expired int64 `json:"expired"`
	// Panics counts recovered handler panics (also counted in Failed).
	Panics int64 `json:"panics"`
	// WorkerRestarts counts worker goroutines that died outside a
	// handler and were replaced (the delivery they held fails like a
	// handler error: retried, or dead-lettered at its last attempt).
	WorkerRestarts int64 `json:"worker_restarts"`
	// InFlight is the number of deliveries being handled now.
	InFlight int64 `json:"in_flight"`
	// Workers is the number of worker goroutines.
	Workers int `json:"workers"`
	// Paused reports whether the pool stopped taking new work.
	Paused bool `json:"paused"`
	// LastError is the text of the latest failure.
	LastError string `json:"last_error,omitempty"`
	// LastFinished is when the latest delivery was settled.
	LastFinished time.Time `json:"last_finished,omitzero"`
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
	// task asking for a completion then fails and is retried).
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
// in batches (at most Concurrency + BatchSize at a time), runs each through
// recover → timeout → observer → handler, and settles it (ack, retry with
// back-off, dead letter), reporting completions to sources first.
//
// Pool states: Start starts it; Pause/Resume stop and resume leasing;
// Resize changes the number of workers; Stop drains. All methods are safe
// for concurrent use.
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
	release Releaser

	processed, succeeded, failed, retried, dead, returned atomic.Int64
	panics, restarts, inFlight, expired                   atomic.Int64
	lastErr                                               atomic.Pointer[string]
	lastFinished                                          atomic.Int64 // p.clock() when the latest delivery was settled; 0: none
	started                                               atomic.Int64 // p.clock() at Start
	stalled                                               atomic.Bool

	leased   atomic.Int64 // reserved or leased deliveries not yet finished
	halted   atomic.Bool  // paused or stopping: workers start no new delivery
	target   atomic.Int64 // desired workers
	workersN atomic.Int64 // live workers
	kick     atomic.Pointer[chan struct{}]
	wake     chan struct{} // capacity freed: the fetcher looks again
	work     chan *queue.Delivery

	mu          sync.Mutex
	state       poolState
	paused      bool
	slots       []*slot
	leaseCtx    context.Context
	leaseCancel context.CancelFunc
	abandoning  chan struct{}   // closed once Stop's give-backs for abandoned handlers returned; nil: none
	hardCtx     context.Context // parent of every handler context
	hardCancel  context.CancelFunc
	stopCh      chan struct{}
	wg          sync.WaitGroup // workers
	bg          sync.WaitGroup // fetcher
	hk          sync.WaitGroup // housekeeper
	hkStop      chan struct{}  // closed once the workers are done
	done        chan struct{}  // closed once every goroutine of the pool ended (after Stop)

	// Used off the per-task path, kept apart from its counters.

	// extendEvery is the housekeeper's lease-extension period; a delivery
	// whose lease has no more than renewBelow left when a worker takes it
	// is extended before its handler starts.
	extendEvery, renewBelow time.Duration
	returning               atomic.Int64                    // give-backs in progress outside a worker's settlement (unrun or abandoned deliveries)
	renewing                atomic.Int64                    // workers extending a lease before the handler starts (see process)
	extending               atomic.Bool                     // the housekeeper is inside a lease extension
	late                    atomic.Int64                    // give-backs cut short by their context
	fetching                atomic.Bool                     // the fetcher has not returned
	stopCtx                 atomic.Pointer[context.Context] // Stop's ctx: bounds settlements once the pool stops
	// extendCtx is the parent of every lease extension (a worker's
	// renew, the housekeeper's rounds); extendCancel ends it once Stop's
	// ctx ended, so that an extension in progress, begun before Stop,
	// does not outlive it either.
	extendCtx    context.Context
	extendCancel context.CancelFunc
}

type poolState int

const (
	stateNew poolState = iota
	stateRunning
	stateStopping
	stateStopped
)

// slot is one worker's current delivery, shared with the housekeeper
// (lease extension) and Stop (returning what a stuck handler holds).
type slot struct {
	mu       sync.Mutex
	d        *queue.Delivery
	settled  bool
	extendAt time.Time
}

// begin records d as the slot's current delivery.
func (s *slot) begin(d *queue.Delivery, extendAt time.Time) {
	s.mu.Lock()
	s.d, s.settled, s.extendAt = d, false, extendAt
	s.mu.Unlock()
}

// claim gives the caller the right to settle the current delivery; only
// one caller gets it.
func (s *slot) claim() bool {
	s.mu.Lock()
	ok := s.d != nil && !s.settled
	s.settled = true
	s.mu.Unlock()
	return ok
}

// unsettled reports whether d is the slot's delivery and nobody claimed
// it yet.
func (s *slot) unsettled(d *queue.Delivery) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d == d && !s.settled
}

// claimCurrent claims the current delivery and returns it; nil when there
// is none or it was claimed already.
func (s *slot) claimCurrent() *queue.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.d == nil || s.settled {
		return nil
	}
	s.settled = true
	return s.d
}

// end clears the slot.
func (s *slot) end() {
	s.mu.Lock()
	s.d = nil
	s.mu.Unlock()
}

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
	comp, err := p.Registry.Register(ComponentPrefix+p.Queue, lifecycle.StayDegraded)
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
		stopCh:  make(chan struct{}),
		hkStop:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	pl.release, _ = p.Backend.(Releaser)
	pl.extendCtx, pl.extendCancel = context.WithCancel(context.Background())
	pl.extendEvery = min(max(cfg.Lease/4, time.Millisecond), 5*time.Second)
	pl.renewBelow = max(cfg.Lease/2, pl.extendEvery)
	pl.target.Store(int64(cfg.Concurrency))
	k := make(chan struct{})
	pl.kick.Store(&k)
	comp.SetDetails(func() any { return pl.Stats() })
	return pl, nil
}

// clock returns the time since the pool's epoch from the monotonic clock
// alone (cheaper than time.Now on the per-task path).
func (p *Pool) clock() time.Duration { return time.Since(p.epoch) }

// Queue returns the pool's queue name.
func (p *Pool) Queue() string { return p.queue }

// Config returns the pool's resolved settings.
func (p *Pool) Config() PoolConfig { return p.cfg }

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	paused := p.paused
	p.mu.Unlock()
	s := Stats{
		Queue:          p.queue,
		Processed:      p.processed.Load(),
		Succeeded:      p.succeeded.Load(),
		Failed:         p.failed.Load(),
		Retried:        p.retried.Load(),
		Dead:           p.dead.Load(),
		Returned:       p.returned.Load(),
		Expired:        p.expired.Load(),
		Panics:         p.panics.Load(),
		WorkerRestarts: p.restarts.Load(),
		InFlight:       p.inFlight.Load(),
		Workers:        int(p.workersN.Load()),
		Paused:         paused,
	}
	if e := p.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	if n := p.lastFinished.Load(); n != 0 {
		s.LastFinished = p.epoch.Add(time.Duration(n))
	}
	return s
}

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
	p.started.Store(int64(p.clock()))
	p.hardCtx, p.hardCancel = context.WithCancel(context.Background())
	p.newLeaseCtxLocked()
	for i := int64(0); i < p.target.Load(); i++ {
		p.spawnLocked(&slot{})
	}
	p.bg.Add(1)
	p.fetching.Store(true)
	go p.fetch()
	p.hk.Add(1)
	go p.housekeep()
	p.comp.Set(lifecycle.Running, nil)
	return nil
}

func (p *Pool) newLeaseCtxLocked() {
	if p.leaseCancel != nil {
		p.leaseCancel()
	}
	p.leaseCtx, p.leaseCancel = context.WithCancel(context.Background())
}

// spawnLocked starts a worker on s. p.mu must be held.
func (p *Pool) spawnLocked(s *slot) {
	p.slots = append(p.slots, s)
	p.workersN.Add(1)
	p.wg.Add(1)
	go p.worker(s)
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
	p.mu.Unlock()
	p.log.Info("pool paused")
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

// Resize sets the number of workers to n (at least 1). Growing starts
// workers at once; shrinking lets surplus workers exit when they finish
// their current task, so nothing in flight is lost.
func (p *Pool) Resize(n int) error {
	if n < 1 {
		return fmt.Errorf("%w (got %d)", ErrInvalidSize, n)
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
		case <-p.stopCh:
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

// fetch is the leasing loop.
func (p *Pool) fetch() {
	defer p.bg.Done()
	defer p.fetching.Store(false)
	var errDelay time.Duration
	for {
		n, ctx, ok := p.reserve()
		if !ok {
			return
		}
		ds, err := p.backend.Lease(ctx, p.queue, n, p.cfg.Lease)
		p.unreserve(n - len(ds))
		if err != nil {
			if ctx.Err() != nil {
				continue // paused or stopping: reserve decides
			}
			errDelay = min(max(2*errDelay, 50*time.Millisecond), 5*time.Second)
			p.setLastError(err)
			p.log.Warn("lease failed", zap.Error(err), zap.Duration("retry_in", errDelay))
			p.comp.Set(lifecycle.Degraded, fmt.Errorf("lease: %w", err))
			if !p.sleep(errDelay) {
				return
			}
			continue
		}
		if errDelay != 0 {
			errDelay = 0
			p.comp.Set(lifecycle.Running, nil)
		}
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
			case <-p.stopCh:
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
}

// sleep waits d unless the pool stops; it reports whether d passed.
func (p *Pool) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.stopCh:
		return false
	}
}

// worker runs deliveries until it is surplus or the pool stops. A panic
// outside the handler and the settlement (both recovered separately)
// kills the worker; it is logged and counted, its delivery, unless
// settled already, fails like a handler error (see crashed), and a
// replacement starts on the same slot.
func (p *Pool) worker(s *slot) {
	defer p.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			p.crashed(s, r)
		}
	}()
	for {
		// Load the kick channel before the surplus check: a Resize that
		// lowers the target after the check closes this very channel, so
		// the worker wakes and checks again instead of sleeping on a newer
		// one.
		kick := *p.kick.Load()
		if p.surplus(s) {
			return
		}
		// Fast path: take buffered work without a full select.
		var d *queue.Delivery
		select {
		case d = <-p.work:
		default:
		}
		if d != nil {
			p.run(s, d)
			continue
		}
		select {
		case d := <-p.work:
			p.run(s, d)
		case <-kick:
		case <-p.stopCh:
			return
		}
	}
}

// run processes d unless the pool is paused or stopping, in which case d
// goes back to the queue.
func (p *Pool) run(s *slot, d *queue.Delivery) {
	if p.halted.Load() {
		p.returnUnrun(d)
		return
	}
	p.process(s, d)
}

// surplus removes s and reports true when the pool has more workers than
// its target.
func (p *Pool) surplus(s *slot) bool {
	if p.workersN.Load() <= p.target.Load() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.workersN.Load() <= p.target.Load() {
		return false
	}
	p.workersN.Add(-1)
	for i, x := range p.slots {
		if x == s {
			p.slots = append(p.slots[:i], p.slots[i+1:]...)
			break
		}
	}
	return true
}

// crashed replaces the worker of s, which died of r outside its handler
// and outside settlement (an observer's Finished, say). The delivery it
// held, unless already settled, fails like a handler error: retried after
// the back-off, or dead-lettered at its last attempt. Giving it back
// uncounted (Release) would let a task that crashes every worker run
// again at once, forever.
func (p *Pool) crashed(s *slot, r any) {
	p.restarts.Add(1)
	err := fmt.Errorf("worker crashed: %v", r)
	p.setLastError(err)
	p.log.Error("worker goroutine died outside a handler; replacing it", zap.Any("panic", r), zap.Stack("stack"))
	s.mu.Lock()
	d := s.d
	s.mu.Unlock()
	if d != nil {
		if s.unsettled(d) {
			p.settleCrashed(s, d, err)
		}
		s.end()
		p.inFlight.Add(-1)
		p.unreserve(1)
	}
	p.wg.Add(1)
	go p.worker(s)
}

// settleCrashed fails d, the delivery of a crashed worker. A panic here
// (a broken backend) is logged; the delivery's lease then runs out and
// the backend delivers it again, as a new attempt.
func (p *Pool) settleCrashed(s *slot, d *queue.Delivery, err error) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("panic while settling the task of a crashed worker", zap.String("task", d.Task.ID),
				zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	p.fail(p.hardCtx, s, d, p.router.lookup(d.Task.Kind), err)
	p.processed.Add(1)
	p.lastFinished.Store(int64(p.clock()))
}

// setLastError records err's text (see errorText) as Stats.LastError.
func (p *Pool) setLastError(err error) {
	msg, _ := errorText(err)
	p.lastErr.Store(&msg)
}

// settleParent is the parent of every settlement context: Stop's ctx once
// the pool stops, else context.Background().
func (p *Pool) settleParent() context.Context {
	if c := p.stopCtx.Load(); c != nil {
		return *c
	}
	return context.Background()
}

// settleCtx bounds a settlement call (retry, dead letter) by the lease
// and, once Stop began, by Stop's ctx, whichever ends first. It is not
// tied to the handler's context (a settlement must go through even while
// the pool stops), but a backend that never answers cannot hold a worker
// longer than the delivery's lease (after that the backend redelivers the
// task anyway), nor Stop past its ctx. Acks, on every task's path, pass
// context.Background() and stay allocation-free: a backend whose ack
// waits for an answer bounds it itself (JetStream's AckSync by AckWait).
func (p *Pool) settleCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.settleParent(), p.cfg.Lease)
}

// giveBack returns d to the queue unsettled: Release when the backend
// can, else Retry at now. The call is bounded by parent and by the lease.
func (p *Pool) giveBack(parent context.Context, d *queue.Delivery) {
	ctx, cancel := context.WithTimeout(parent, p.cfg.Lease)
	defer cancel()
	var err error
	if p.release != nil {
		err = p.release.Release(ctx, d)
	} else {
		err = p.backend.Retry(ctx, d, time.Now())
	}
	p.returned.Add(1)
	if err != nil && !errors.Is(err, queue.ErrLeaseLost) {
		if ctx.Err() != nil {
			p.late.Add(1)
		}
		p.log.Warn("return unfinished task to queue", zap.String("task", d.Task.ID), zap.Error(err))
	}
}

// maxParallelGiveBacks bounds the backend calls of one giveBackAll.
const maxParallelGiveBacks = 16

// giveBackAll gives ds back, up to maxParallelGiveBacks at a time, and
// waits for all: a slow backend delays Pause and Stop by about one call,
// not by one call per delivery.
func (p *Pool) giveBackAll(parent context.Context, ds []*queue.Delivery) {
	if len(ds) == 1 {
		p.giveBack(parent, ds[0])
		return
	}
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(len(ds), maxParallelGiveBacks) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(ds)); i = next.Add(1) - 1 {
				p.giveBack(parent, ds[i])
			}
		})
	}
	wg.Wait()
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
	n := int64(len(ds))
	p.returning.Add(n)
	parent := p.settleParent()
	if parent.Err() != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), stopGrace)
		defer cancel()
		parent = ctx
	}
	p.giveBackAll(parent, ds)
	p.returning.Add(-n)
	p.unreserve(len(ds))
}
