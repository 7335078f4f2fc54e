package worker

import (
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// Module provides the task runtime to an fx application:
//
//   - task.Enqueuer and *Producer (the producer);
//   - *Runtime (pools, router, source supervisor).
//
// It consumes the "task.routes", "task.middleware" (Middleware, wrapping
// every route) and "task.sources" groups, a queue.Backend,
// a *lifecycle.Registry, and optionally a Config ("workers" section),
// a source.Config ("sources" section), a *zap.Logger, a task.Observer
// (task.NopObserver when absent), a source.Observer, a lease.Provider
// (local leases when absent) and source.Marks.
//
// # Start and stop order
//
// The runtime appends two fx.Lifecycle hooks when it is built: first the
// pools', then the sources'. fx runs OnStart hooks in append order and
// OnStop hooks in reverse, so on start pools start, then sources; on stop
// sources stop first (no new tasks), then pools drain. The runtime depends
// on queue.Backend, so a backend that appends its own hook in its
// constructor starts before the pools and is closed after they drained.
// fx runs no stop hook once the stop timeout has passed, so the sources
// wait for their Run at most half the time left, and the pools drain
// within three quarters of what is left then: a source or a handler that
// ignores its cancellation does not keep the pools from draining or the
// backend from closing.
//
// The producer is provided by its own constructor (bound to the router
// when the runtime is built), so route constructors may depend on
// task.Enqueuer to fan work out without a dependency cycle.
var Module = fx.Module("worker",
	fx.Provide(
		newFxProducer,
		func(p *Producer) task.Enqueuer { return p },
		newFxRuntime,
	),
	fx.Invoke(func(*Runtime) {}),
)

// fxParams are the runtime's fx dependencies.
type fxParams struct {
	fx.In

	Lifecycle    fx.Lifecycle
	Routes       []task.Route    `group:"task.routes"`
	Middleware   []Middleware    `group:"task.middleware"`
	Sources      []source.Source `group:"task.sources"`
	Backend      queue.Backend
	Config       Config        `optional:"true"`
	SourceConfig source.Config `optional:"true"`
	Registry     *lifecycle.Registry
	Logger       *zap.Logger   `optional:"true"`
	Observer     task.Observer `optional:"true"`
	// SourceObserver sees source polls and emits (telemetry provides it).
	SourceObserver source.Observer `optional:"true"`
	// Overrides keeps the pools' run-time overrides (the control plane
	// provides a durable one on JetStream).
	Overrides queue.OverrideStore `optional:"true"`
	// Leases and Marks serve exclusive sources and schedules (the
	// platform provides them from the queue backend).
	Leases   lease.Provider `optional:"true"`
	Marks    source.Marks   `optional:"true"`
	Producer *Producer
}

type producerParams struct {
	fx.In

	Backend  queue.Backend
	Observer task.Observer `optional:"true"`
}

func newFxProducer(p producerParams) *Producer {
	return NewProducer(p.Backend, nil, p.Observer)
}

func newFxRuntime(p fxParams) (*Runtime, error) {
	r, err := New(Params{
		Routes: p.Routes, Middleware: p.Middleware, Backend: p.Backend, Config: p.Config,
		Sources: p.Sources, SourceConfig: p.SourceConfig,
		Registry: p.Registry, Logger: p.Logger, Observer: p.Observer,
		SourceObserver: p.SourceObserver,
		Overrides:      p.Overrides,
		Leases:         p.Leases,
		Marks:          p.Marks,
		Producer:       p.Producer,
	})
	if err != nil {
		return nil, err
	}
	p.Lifecycle.Append(fx.Hook{
		OnStart: r.StartPools,
		OnStop:  r.StopPools,
	})
	p.Lifecycle.Append(fx.Hook{
		OnStart: r.StartSources,
		OnStop:  r.StopSources,
	})
	return r, nil
}
