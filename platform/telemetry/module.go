package telemetry

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/task"
)

// Module provides, from a Config in the graph (the "telemetry" section):
// *Telemetry, trace.TracerProvider, metric.MeterProvider,
// propagation.TextMapPropagator, task.Observer, SourceObserver and
// MetricsHandler, and contributes "GET /metrics" to the admin server (the
// "admin.routes" group). It installs the providers as otel's globals. If
// the graph holds a QueueStatser or a PoolStatser, the queue and pool
// gauges are fed from them; Options in the "telemetry.options" group
// (WithOptions) adjust New.
//
// Shutdown runs in an OnStop hook. fx runs OnStop hooks in reverse order of
// OnStart, and the worker pools depend on the task.Observer, so their hooks
// stop (drain) before telemetry flushes.
var Module = fx.Module("telemetry",
	fx.Provide(newFx),
	fx.Provide(admin.AsRoute(MetricsRoute)),
)

// MetricsPath is where Module mounts the Prometheus exposition on the
// admin server.
const MetricsPath = "/metrics"

// OptionsGroup is the fx value group Module reads Options from.
const OptionsGroup = "telemetry.options"

// WithOptions contributes opts to Module's New (for example an in-memory
// span exporter in tests).
func WithOptions(opts ...Option) fx.Option {
	provides := make([]any, 0, len(opts))
	for _, o := range opts {
		provides = append(provides, fx.Annotate(func() Option { return o }, fx.ResultTags(`group:"`+OptionsGroup+`"`)))
	}
	return fx.Provide(provides...)
}

// MetricsRoute is the admin route "GET /metrics" serving h.
func MetricsRoute(h MetricsHandler) admin.Route {
	return admin.Route{Pattern: "GET " + MetricsPath, Handler: h, Page: true}
}

// MetricsHandler is the Prometheus /metrics handler, as its own type so
// that fx can tell it from other http.Handlers. The admin server mounts it.
type MetricsHandler interface{ http.Handler }

// fxParams are newFx's inputs.
type fxParams struct {
	fx.In

	Config    Config
	Lifecycle fx.Lifecycle
	// Queues feeds the queue gauges when present.
	Queues QueueStatser `optional:"true"`
	// Pools feeds the pool gauges when present.
	Pools PoolStatser `optional:"true"`
	// Options adjust New (see WithOptions).
	Options []Option `group:"telemetry.options"`
}

// fxResult are newFx's outputs.
type fxResult struct {
	fx.Out

	Telemetry      *Telemetry
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	Observer       task.Observer
	SourceObserver SourceObserver
	Metrics        MetricsHandler
}

// newFx builds Telemetry for the fx graph: New with p.Config, the gauges
// fed from p.Queues and p.Pools, globals installed, Shutdown on stop.
func newFx(p fxParams) (fxResult, error) {
	t, err := New(context.Background(), p.Config, p.Options...)
	if err != nil {
		return fxResult{}, err
	}
	if p.Queues != nil {
		if err := t.ObserveQueues(p.Queues); err != nil {
			_ = t.Shutdown(context.Background())
			return fxResult{}, err
		}
	}
	if p.Pools != nil {
		if err := t.ObservePools(p.Pools); err != nil {
			_ = t.Shutdown(context.Background())
			return fxResult{}, err
		}
	}
	p.Lifecycle.Append(fx.StopHook(t.Shutdown))
	t.InstallGlobals()
	return fxResult{
		Telemetry:      t,
		TracerProvider: t.TracerProvider(),
		MeterProvider:  t.MeterProvider(),
		Propagator:     t.Propagator(),
		Observer:       t.Observer(),
		SourceObserver: t.SourceObserver(),
		Metrics:        t.MetricsHandler(),
	}, nil
}
