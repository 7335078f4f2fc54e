package worker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// ErrNotReady is returned by a Producer whose router is not bound yet
// (only possible when it is used before the Runtime was built).
var ErrNotReady = errors.New("worker: producer used before the runtime was built")

// Params are the parts of a Runtime.
type Params struct {
	// Routes are the task routes (the "task.routes" group).
	Routes []task.Route
	// Middleware wraps every route's handler, in Order (the
	// "task.middleware" group).
	Middleware []Middleware
	// Backend is the queue backend. Required.
	Backend queue.Backend
	// Config is the "workers" section.
	Config Config
	// Sources are the sources to supervise (the "task.sources" group).
	Sources []source.Source
	// SourceConfig is the sources' supervision policy.
	SourceConfig source.Config
	// Leases gives the lease of each exclusive source (a source.Exclusiver
	// saying true: it runs wrapped in source.Exclusive); nil means local
	// leases (one process).
	Leases lease.Provider
	// Marks are handed to the sources that keep marks (source.MarksUser:
	// schedules); nil gives them none.
	Marks source.Marks
	// Registry receives the pools' and sources' components; nil means a
	// private registry.
	Registry *lifecycle.Registry
	// Logger; nil discards.
	Logger *zap.Logger
	// Observer sees enqueues and deliveries; nil means task.NopObserver.
	Observer task.Observer
	// SourceObserver sees the sources' polls and emits; nil means none.
	SourceObserver source.Observer
	// Overrides keeps the pools' run-time overrides (pause, size); nil
	// means a queue.MemoryOverrides (lost with the process).
	Overrides queue.OverrideStore
	// Producer, when set, is bound to the runtime's router instead of a
	// new one (the fx module provides it separately so route constructors
	// can depend on task.Enqueuer without a cycle).
	Producer *Producer
}

// Runtime owns the task runtime of a host: the router, the producer, one
// pool per queue (every queue with a route, every configured queue, and
// always task.DefaultQueue, where unrouted kinds are dead-lettered) and the
// source supervisor.
//
// Start order: pools, then sources. Stop order: sources (no new tasks),
// then pools drain in parallel. The queue backend is not owned: it must
// start before Start and close after Stop.
type Runtime struct {
	router     *Router
	producer   *Producer
	pools      []*Pool
	byQueue    map[string]*Pool
	supervisor *source.Supervisor
	log        *zap.Logger
	backend    queue.Backend
	dead       *teller
	ov         overrides
}

// New validates p and builds the runtime without starting anything.
func New(p Params) (*Runtime, error) {
	if p.Backend == nil {
		return nil, errors.New("worker: runtime needs a queue backend")
	}
	if err := p.Config.Validate(); err != nil {
		return nil, fmt.Errorf("worker: config: %w", err)
	}
	if p.Registry == nil {
		p.Registry = lifecycle.NewRegistry(nil, nil)
	}
	if p.Logger == nil {
		p.Logger = zap.NewNop()
	}
	if p.Observer == nil {
		p.Observer = task.NopObserver{}
	}
	mws, err := sortMiddleware(p.Middleware)
	if err != nil {
		return nil, err
	}
	router, err := NewRouter(wrapRoutes(p.Routes, mws))
	if err != nil {
		return nil, err
	}
	prod := p.Producer
	if prod == nil {
		prod = NewProducer(p.Backend, router, p.Observer)
	} else {
		prod.bind(router)
	}
	sources := source.Prepare(p.Leases, p.Marks, p.Sources)
	sup, err := source.NewSupervisor(p.SourceConfig, prod, p.Registry, p.Logger.Named("source"), sources...)
	if err == nil && p.SourceObserver != nil {
		sup.SetObserver(p.SourceObserver)
	}
	if err != nil {
		return nil, err
	}
	names := map[string]bool{task.DefaultQueue: true}
	for _, q := range router.Queues() {
		names[q] = true
	}
	for q := range p.Config {
		names[q] = true
	}
	queues := make([]string, 0, len(names))
	for q := range names {
		queues = append(queues, q)
	}
	sort.Strings(queues)
	r := &Runtime{router: router, producer: prod, byQueue: map[string]*Pool{}, supervisor: sup, log: p.Logger, backend: p.Backend}
	r.ov.store = p.Overrides
	if r.ov.store == nil {
		r.ov.store = &queue.MemoryOverrides{}
	}
	for _, q := range queues {
		pool, err := NewPool(PoolParams{
			Queue: q, Config: p.Config.For(q), Backend: p.Backend, Router: router,
			Completions: sup.Completions(), Observer: p.Observer,
			Logger: p.Logger.Named("worker"), Registry: p.Registry,
		})
		if err != nil {
			return nil, err
		}
		r.pools = append(r.pools, pool)
		r.byQueue[q] = pool
	}
	r.dead = newTeller(sup.Completions(), r.byQueue, p.Observer, p.Logger.Named("worker"))
	sup.SetCompleter(r.completeFinished)
	return r, nil
}

// Router returns the runtime's router.
func (r *Runtime) Router() *Router { return r.router }

// Producer returns the runtime's task.Enqueuer.
func (r *Runtime) Producer() *Producer { return r.producer }

// Supervisor returns the source supervisor.
func (r *Runtime) Supervisor() *source.Supervisor { return r.supervisor }

// Pools returns every pool, ordered by queue name.
func (r *Runtime) Pools() []*Pool { return append([]*Pool(nil), r.pools...) }

// Pool returns the pool of queue.
func (r *Runtime) Pool(queue string) (*Pool, bool) {
	p, ok := r.byQueue[queue]
	return p, ok
}

// Start starts the pools, then the sources.
func (r *Runtime) Start(ctx context.Context) error {
	if err := r.StartPools(ctx); err != nil {
		return err
	}
	return r.StartSources(ctx)
}

// Stop stops the sources, then drains the pools.
func (r *Runtime) Stop(ctx context.Context) error {
	return errors.Join(r.StopSources(ctx), r.StopPools(ctx))
}

// StartPools declares the pools' queues to a backend that sets queues up
// ahead of use (queue.Declarer), applies the saved pool overrides
// (Params.Overrides), then starts every pool; on failure the ones already started are
// stopped again. A backend that dead-letters tasks on its own
// (queue.DeadWatcher) reports each such dead letter to the runtime from
// now on, which tells the task's source (task.DeadLettered, with the
// backend's reason), counts it on the pool of its queue and tells the
// observer, when it is a task.DeadObserver. A backend that finds tasks
// delivered again after they succeeded (queue.FinishedWatcher) reports
// those that carry a source, which is told task.Succeeded.
func (r *Runtime) StartPools(ctx context.Context) error {
	for _, p := range r.pools { // their start begins with their queues' declaration
		p.comp.BeginStart()
	}
	if d, ok := r.backend.(queue.Declarer); ok {
		names := make([]string, len(r.pools))
		for i, p := range r.pools {
			names[i] = p.queue
		}
		if err := d.Declare(ctx, names...); err != nil {
			return fmt.Errorf("worker: declare queues %v: %w", names, err)
		}
	}
	if err := r.applyOverrides(ctx); err != nil {
		return err
	}
	r.dead.start()
	if w, ok := r.backend.(queue.DeadWatcher); ok {
		w.WatchDead(r.dead.addDead)
	}
	if w, ok := r.backend.(queue.FinishedWatcher); ok {
		w.WatchFinished(r.dead.addFinished)
	}
	for i, p := range r.pools {
		if err := p.Start(ctx); err != nil {
			for _, q := range r.pools[:i] {
				_ = q.Stop(ctx)
			}
			limit, cancel := deadlineOf(ctx)
			_ = r.dead.close(ctx, limit)
			cancel()
			return err
		}
	}
	return nil
}

// StopPools drains every pool in parallel. When ctx has a deadline, the
// pools are done a quarter of the time left before it (see poolsShare):
// the queue backend, closed after them within the same deadline, has that
// time to give back what it prefetched and to flush its acks, also when a
// handler ignores its cancellation and holds its pool to the end. The
// outcomes the backend found on its own (see teller) are told until then,
// and a short grace after it (never past ctx's deadline).
func (r *Runtime) StopPools(ctx context.Context) error {
	limit, cancelLimit := deadlineOf(ctx)
	defer cancelLimit()
	ctx, cancel := leaving(ctx, poolsShare)
	defer cancel()
	errs := make([]error, len(r.pools))
	var wg sync.WaitGroup
	for i, p := range r.pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Stop(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, r.dead.close(ctx, limit))...)
}

// The shares of a stop's time: the hooks of an fx app stop in turn
// within one deadline (the stop timeout), and fx runs none once it has
// passed. So the sources, stopped first, leave the pools and the backend
// half the time left (a source that ignores its cancellation would
// otherwise keep the pools from draining at all: their handlers cut off
// by the process's exit, their leased tasks coming back as new attempts),
// and the pools leave the queue backend, closed after them, a quarter (a
// JetStream backend's prefetched tasks would otherwise come back with a
// delivery counted for an attempt that never ran, and its embedded
// server would not be shut down).
const (
	sourcesShare = 2 // the sources leave 1/2 of the time left
	poolsShare   = 4 // the pools leave 1/4 of the time left
)

// leaving returns ctx, or, when ctx has a deadline, a context that ends
// one in share of the time left before it.
func leaving(ctx context.Context, share time.Duration) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	left := time.Until(dl)
	if left <= 0 {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, dl.Add(-left/share))
}

// StartSources starts the source supervisor.
func (r *Runtime) StartSources(ctx context.Context) error { return r.supervisor.Start(ctx) }

// StopSources stops the sources and waits for them. When ctx has a
// deadline, it waits at most half the time left (see sourcesShare): the
// pools, stopped after the sources within the same deadline, drain in the
// rest.
func (r *Runtime) StopSources(ctx context.Context) error {
	ctx, cancel := leaving(ctx, sourcesShare)
	defer cancel()
	return r.supervisor.Stop(ctx)
}

// bind sets the producer's router once.
func (p *Producer) bind(r *Router) { p.bound.Store(r) }
