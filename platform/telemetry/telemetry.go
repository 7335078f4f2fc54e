package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelruntime "go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/plba/plba/platform/task"
)

// TracerName is the instrumentation scope of the platform's spans.
const TracerName = "github.com/plba/plba/platform/telemetry"

// ErrShutdown is returned by registrations after Shutdown.
var ErrShutdown = errors.New("telemetry: shut down")

// Option adjusts New beyond Config (mostly for tests). Options are sealed.
type Option interface {
	apply(*options)
	String() string
}

type options struct {
	spanExporter sdktrace.SpanExporter
	syncExport   bool
	readers      []func(sdkmetric.Producer) sdkmetric.Reader
}

type spanExporterOption struct {
	e    sdktrace.SpanExporter
	sync bool
}

func (o spanExporterOption) apply(opts *options) { opts.spanExporter, opts.syncExport = o.e, o.sync }
func (o spanExporterOption) String() string {
	return fmt.Sprintf("WithSpanExporter(%T, sync=%v)", o.e, o.sync)
}

// WithSpanExporter exports spans to e through the batch span processor,
// replacing the configured exporter (for example tracetest's in-memory
// exporter). The configured sampler applies; with exporter "none" in the
// config, the sampler is still taken from the config.
func WithSpanExporter(e sdktrace.SpanExporter) Option { return spanExporterOption{e: e} }

// WithSyncSpanExporter is WithSpanExporter with the synchronous (simple)
// span processor: every span is exported when it ends. Tests only.
func WithSyncSpanExporter(e sdktrace.SpanExporter) Option {
	return spanExporterOption{e: e, sync: true}
}

type readerOption struct {
	newReader func(sdkmetric.Producer) sdkmetric.Reader
}

func (o readerOption) apply(opts *options) { opts.readers = append(opts.readers, o.newReader) }
func (o readerOption) String() string      { return "WithMetricReader" }

// WithMetricReader adds a metric reader beside the configured ones (for
// example a sdkmetric.ManualReader in tests). New calls newReader with
// the producer of the task histograms, which the observer aggregates
// outside the SDK: the reader must be built with it
// (sdkmetric.WithProducer) to see plba.task.duration and
// plba.task.queue_wait.
func WithMetricReader(newReader func(sdkmetric.Producer) sdkmetric.Reader) Option {
	return readerOption{newReader: newReader}
}

// Telemetry owns the tracer and meter providers built from a Config, the
// propagator, the Prometheus registry and the task Observer. Shutdown
// flushes and stops everything.
type Telemetry struct {
	cfg      Config
	tp       *sdktrace.TracerProvider
	mp       *sdkmetric.MeterProvider // nil when metrics are off
	meter    metric.MeterProvider
	prop     propagation.TextMapPropagator
	registry *prometheus.Registry
	handler  http.Handler
	obs      *Observer
	off      bool
	// pushes: a metric reader exports on Shutdown (OTLP, or one given
	// with WithMetricReader), after the span flush.
	pushes bool
	// drops are the batch span export's (nil without one).
	drops *spanDrops

	mu       sync.Mutex
	regs     []metric.Registration
	shutdown bool
}

// New builds the providers described by cfg (defaults applied, then
// validated). Nothing is started that outlives Shutdown: the batch span
// processor's and the periodic metric reader's goroutines stop there.
func New(ctx context.Context, cfg Config, opts ...Option) (*Telemetry, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt.apply(&o)
	}
	if cfg.Resource.ServiceInstanceID == "" {
		cfg.Resource.ServiceInstanceID = instanceID()
	}
	res, err := newResource(ctx, cfg.Resource)
	if err != nil {
		return nil, err
	}
	t := &Telemetry{
		cfg:  cfg,
		prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}

	// Traces.
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	exporter := o.spanExporter
	if exporter == nil {
		exporter, err = newSpanExporter(ctx, cfg.Traces)
		if err != nil {
			return nil, err
		}
	}
	sampler := newSampler(cfg.Traces)
	var drops *spanDrops // the batch export's, nil without one
	switch {
	case exporter == nil:
		// No export: keep creating and propagating trace context (log
		// correlation, downstream consumers) but record nothing.
		sampler = sdktrace.NeverSample()
	case o.syncExport:
		tpOpts = append(tpOpts, sdktrace.WithSyncer(exporter))
	default:
		var bsp sdktrace.SpanProcessor
		bsp, drops = newDropCountingBatcher(exporter, cfg.Traces.MaxQueueSize,
			sdktrace.WithBatchTimeout(cfg.Traces.BatchTimeout),
			sdktrace.WithMaxExportBatchSize(cfg.Traces.MaxExportBatchSize))
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(bsp))
	}
	tpOpts = append(tpOpts, sdktrace.WithSampler(sampler), sdktrace.WithIDGenerator(idGenerator{}))
	t.tp = sdktrace.NewTracerProvider(tpOpts...)

	// Metrics. Every reader gets hists, the task histograms.
	t.meter = metricnoop.NewMeterProvider()
	hists := newHistProducer()
	if cfg.Metrics.MetricsEnabled() || len(o.readers) > 0 {
		// No exemplars: the Prometheus text format does not carry them,
		// and the hot path records without the span's context.
		mpOpts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter)}
		if cfg.Metrics.PrometheusEnabled() {
			t.registry = prometheus.NewRegistry()
			pe, err := otelprom.New(otelprom.WithRegisterer(t.registry), otelprom.WithProducer(hists))
			if err != nil {
				_ = t.tp.Shutdown(ctx)
				return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
			}
			mpOpts = append(mpOpts, sdkmetric.WithReader(pe))
			t.handler = promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
		}
		if cfg.Metrics.MetricsEnabled() && cfg.Metrics.OTLP.Enabled {
			me, err := newMetricExporter(ctx, cfg.Metrics.OTLP.OTLPConfig)
			if err != nil {
				_ = t.tp.Shutdown(ctx)
				return nil, err
			}
			mpOpts = append(mpOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(me,
				sdkmetric.WithInterval(cfg.Metrics.OTLP.Interval), sdkmetric.WithProducer(hists))))
		}
		for _, newReader := range o.readers {
			mpOpts = append(mpOpts, sdkmetric.WithReader(newReader(hists)))
		}
		t.pushes = (cfg.Metrics.MetricsEnabled() && cfg.Metrics.OTLP.Enabled) || len(o.readers) > 0
		t.mp = sdkmetric.NewMeterProvider(mpOpts...)
		t.meter = t.mp
		if cfg.Metrics.RuntimeEnabled() {
			if err := otelruntime.Start(otelruntime.WithMeterProvider(t.mp)); err != nil {
				_ = t.Shutdown(ctx)
				return nil, fmt.Errorf("telemetry: runtime metrics: %w", err)
			}
		}
	}
	if t.handler == nil {
		t.handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "metrics are not exported for Prometheus (telemetry.metrics.prometheus)", http.StatusNotFound)
		})
	}

	t.obs, err = newObserver(t.tp, t.meter, t.prop)
	if err != nil {
		_ = t.Shutdown(ctx)
		return nil, err
	}
	hists.labels.Store(&t.obs.labels)
	t.drops = drops
	if drops != nil {
		if err := t.register(func() (metric.Registration, error) { return t.obs.inst.observeSpanDrops(drops) }); err != nil {
			_ = t.Shutdown(ctx)
			return nil, err
		}
	}
	switch cfg.Traces.Sampler {
	case SamplerParentBasedAlways, SamplerParentBasedRatio, SamplerNever:
		t.obs.reuseUnsampled = true
	}
	if exporter == nil {
		t.obs.reuseUnsampled = true // NeverSample
	}
	// The observer asks the sampler before starting a new trace's
	// producer span when the sampler may drop it (the provider takes the
	// ids it asked with).
	if exporter == nil || cfg.Traces.Sampler == SamplerNever ||
		((cfg.Traces.Sampler == SamplerRatio || cfg.Traces.Sampler == SamplerParentBasedRatio) && cfg.Traces.Ratio < 1) {
		t.obs.sampler = sampler
		t.obs.dropsNew = exporter == nil || cfg.Traces.Sampler == SamplerNever || cfg.Traces.Ratio == 0
	}
	t.off = o.spanExporter == nil && cfg.Traces.Exporter == ExporterNone && t.mp == nil
	return t, nil
}

// newObserver builds the Observer over New's providers and propagator;
// New sets its sampling shortcuts and hands its label cache to the
// histogram producer.
func newObserver(tp trace.TracerProvider, mp metric.MeterProvider, prop propagation.TextMapPropagator) (*Observer, error) {
	in, err := newInstruments(mp.Meter(MeterName))
	if err != nil {
		return nil, err
	}
	o := &Observer{
		tp:     tp,
		tracer: tp.Tracer(TracerName),
		prop:   prop,
		inst:   in,
	}
	o.labels.tp = tp
	if _, err := in.observeTasks(&o.labels); err != nil {
		return nil, err
	}
	return o, nil
}

// Config returns the effective configuration (defaults applied).
func (t *Telemetry) Config() Config { return t.cfg }

// TracerProvider returns the tracer provider.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tp }

// MeterProvider returns the meter provider (a no-op one when metrics are
// off).
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.meter }

// Propagator returns the W3C trace context + baggage propagator.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.prop }

// MetricsHandler serves the Prometheus exposition of every metric (404
// when the Prometheus exporter is off). The host mounts it at /metrics.
func (t *Telemetry) MetricsHandler() http.Handler { return t.handler }

// Registry returns the Prometheus registry the exporter writes to (nil when
// the Prometheus exporter is off), for adding collectors of its own.
func (t *Telemetry) Registry() *prometheus.Registry { return t.registry }

// Observer returns the task observer: task.NopObserver when telemetry is
// off (no span exporter and metrics disabled), else the *Observer.
func (t *Telemetry) Observer() task.Observer {
	if t.off {
		return task.NopObserver{}
	}
	return t.obs
}

// SourceObserver returns the source observer: NopSourceObserver when
// telemetry is off, else the *Observer.
func (t *Telemetry) SourceObserver() SourceObserver {
	if t.off {
		return NopSourceObserver{}
	}
	return t.obs
}

// ObserveQueues feeds the queue gauges (plba.queue.depth, in_flight,
// delayed, dead) and the backend's counters (plba.queue.dead_discarded,
// finished_keys_forgotten) from s on every collection, until Shutdown.
func (t *Telemetry) ObserveQueues(s QueueStatser) error {
	return t.register(func() (metric.Registration, error) { return t.obs.inst.observeQueues(s) })
}

// ObservePools feeds the pool gauges (plba.pool.size, busy) from s on every
// collection, until Shutdown.
func (t *Telemetry) ObservePools(s PoolStatser) error {
	return t.register(func() (metric.Registration, error) { return t.obs.inst.observePools(s) })
}

func (t *Telemetry) register(f func() (metric.Registration, error)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shutdown {
		return ErrShutdown
	}
	r, err := f()
	if err != nil {
		return err
	}
	t.regs = append(t.regs, r)
	return nil
}

// InstallGlobals makes the providers and the propagator otel's globals, for
// libraries instrumented through otel.GetTracerProvider and friends.
func (t *Telemetry) InstallGlobals() {
	otel.SetTracerProvider(t.tp)
	otel.SetMeterProvider(t.meter)
	otel.SetTextMapPropagator(t.prop)
}

// ForceFlush exports every finished span and pending metric now.
func (t *Telemetry) ForceFlush(ctx context.Context) error {
	var errs []error
	if err := t.tp.ForceFlush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("telemetry: flush spans: %w", err))
	}
	if t.mp != nil {
		if err := t.mp.ForceFlush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: flush metrics: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Shutdown flushes the finished spans and pending metrics (the last
// push collects every gauge and counter, those fed by ObserveQueues and
// ObservePools included), then stops the exporters, within half of the
// time ctx leaves (the span flush within half of that when metrics are
// pushed too), so that the stop hooks after it (the queue backend's) get
// the rest even when the collector is down. The host calls it after the worker pools have
// drained, so the last deliveries' spans are exported. It is idempotent;
// calls after the first return nil.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	if t.shutdown {
		t.mu.Unlock()
		return nil
	}
	t.shutdown = true
	regs := t.regs
	t.regs = nil
	t.mu.Unlock()

	// With the collector down the exporters wait out their timeouts (the
	// spans', then the metrics': 20 s with the defaults) and would take
	// all the time ctx leaves; fx runs no stop hook once the stop timeout
	// has passed, and the queue backend's comes after this one. So
	// telemetry takes at most half of what ctx leaves, and the span flush
	// at most half of that when metrics are pushed after it.
	ctx, cancel := shareOf(ctx)
	defer cancel()
	tctx, tcancel := ctx, context.CancelFunc(func() {})
	if t.pushes {
		tctx, tcancel = shareOf(ctx)
	}
	var errs []error
	err := t.tp.Shutdown(tctx)
	tcancel()
	if t.drops != nil {
		t.drops.abort() // what the flush did not export in time is dropped
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("telemetry: shut down tracer provider: %w", err))
	}
	if t.mp != nil {
		// The callbacks stay registered until the meter provider is shut
		// down: its periodic readers' last collection (the last OTLP
		// push) reports the queue, pool and span drop counts at the stop.
		if err := t.mp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: shut down meter provider: %w", err))
		}
	}
	for _, r := range regs {
		if err := r.Unregister(); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: unregister callback: %w", err))
		}
	}
	return errors.Join(errs...)
}

// shareOf returns ctx bounded to half of the time its deadline leaves
// (ctx as it is without a deadline).
func shareOf(ctx context.Context) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, time.Now().Add(time.Until(d)/2))
}
