package telemetry_test

// These tests drive the real worker runtime (worker.Module in fxtest) on
// the memory backend, with telemetry.Module exporting spans to an
// in-memory exporter through the batch span processor.

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/log"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/telemetry"
	"github.com/plba/plba/platform/worker"
)

// fastPools retries after a short, jitter-free back-off.
var fastPools = worker.Config{task.DefaultQueue: worker.PoolConfig{
	Concurrency:  4,
	Backoff:      worker.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2, Jitter: -1},
	DrainTimeout: time.Second,
}}

// newBackend returns a memory backend closed when the test ends (after the
// hosts using it stopped: cleanups run last in, first out).
func newBackend(t *testing.T) *memory.Backend {
	t.Helper()
	be := memory.New(memory.Options{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, be.Close(ctx))
	})
	return be
}

// host is one fx application: telemetry, the worker runtime and optionally
// the admin server, on a shared backend.
type host struct {
	spans *tracetest.InMemoryExporter
	logs  *observer.ObservedLogs
	log   *zap.Logger
	tel   *telemetry.Telemetry
	enq   task.Enqueuer
	srv   *admin.Server
}

type hostOpts struct {
	admin  bool
	routes []task.Route
}

func startHost(t *testing.T, be queue.Backend, o hostOpts) *host {
	t.Helper()
	return startHostWith(t, be, o)
}

// startHostWith is startHost with more fx options.
func startHostWith(t *testing.T, be queue.Backend, o hostOpts, extra ...fx.Option) *host {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	h := &host{spans: tracetest.NewInMemoryExporter(), logs: logs, log: zap.New(core)}
	cfg := telemetry.Config{}
	cfg.Traces.Sampler = telemetry.SamplerAlways
	cfg.Metrics.Runtime = telemetry.Bool(false)
	opts := []fx.Option{
		fx.NopLogger,
		fx.Supply(cfg, fastPools, h.log, lifecycle.NewRegistry(nil, nil)),
		fx.Provide(func() queue.Backend { return be }),
		fx.Provide(func() telemetry.QueueStatser { return telemetry.BackendStats(be) }),
		telemetry.WithOptions(telemetry.WithSpanExporter(h.spans)),
		telemetry.Module,
		worker.Module,
		fx.Populate(&h.tel, &h.enq),
	}
	for _, r := range o.routes {
		opts = append(opts, worker.SupplyRoute(r))
	}
	opts = append(opts, extra...)
	if o.admin {
		opts = append(opts,
			fx.Supply(admin.Config{Listen: "127.0.0.1:0", ReadHeaderTimeout: 5 * time.Second}, admin.StatusInfo{Started: time.Now()}),
			health.Module,
			admin.Module,
			fx.Populate(&h.srv),
		)
	}
	app := fxtest.New(t, opts...)
	app.RequireStart()
	t.Cleanup(app.RequireStop)
	return h
}

// flushed returns the spans ended so far.
func (h *host) flushed(t *testing.T) tracetest.SpanStubs {
	t.Helper()
	require.NoError(t, h.tel.ForceFlush(context.Background()))
	return h.spans.GetSpans()
}

// waitSpans waits until n spans called name were exported and returns them.
func (h *host) waitSpans(t *testing.T, name string, n int) []tracetest.SpanStub {
	t.Helper()
	var got []tracetest.SpanStub
	require.Eventually(t, func() bool {
		got = byName(t, h.flushed(t), name)
		return len(got) >= n
	}, 15*time.Second, 20*time.Millisecond, "waiting for %d %q spans", n, name)
	require.Len(t, got, n)
	return got
}

// recorder keeps the span context each handler run saw, by attempt.
type recorder struct {
	mu  sync.Mutex
	scs map[int]trace.SpanContext
}

func (r *recorder) record(ctx context.Context, t *task.Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.scs == nil {
		r.scs = map[int]trace.SpanContext{}
	}
	r.scs[t.Attempt] = trace.SpanContextFromContext(ctx)
}

func (r *recorder) get(attempt int) trace.SpanContext {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.scs[attempt]
}

func TestRuntimeProducerAndConsumerSpans(t *testing.T) {
	t.Parallel()
	var rec recorder
	h := startHost(t, newBackend(t), hostOpts{routes: []task.Route{{
		Kind: "invoice.create", Queue: "billing",
		Handler: task.HandlerFunc(func(ctx context.Context, tk *task.Task) error {
			rec.record(ctx, tk)
			return nil
		}),
	}}})

	ctx, parent := h.tel.TracerProvider().Tracer("test").Start(context.Background(), "http request")
	tk := &task.Task{Kind: "invoice.create", Payload: []byte(`{}`)}
	require.NoError(t, h.enq.Enqueue(ctx, tk))
	parent.End()

	cons := h.waitSpans(t, "billing process", 1)[0]
	prod := byName(t, h.flushed(t), "billing publish")
	require.Len(t, prod, 1)
	p := prod[0]

	// producer: child of the caller's span, in its trace
	require.Equal(t, parent.SpanContext().TraceID(), p.SpanContext.TraceID())
	require.Equal(t, parent.SpanContext().SpanID(), p.Parent.SpanID())
	require.Equal(t, trace.SpanKindProducer, p.SpanKind)
	pa := attrs(p)
	require.Equal(t, "plba", pa[telemetry.AttrMessagingSystem].AsString())
	require.Equal(t, "billing", pa[telemetry.AttrMessagingDestination].AsString())
	require.Equal(t, tk.ID, pa[telemetry.AttrMessagingMessageID].AsString())
	require.Equal(t, "send", pa[telemetry.AttrMessagingOperationType].AsString())
	require.Equal(t, "invoice.create", pa[telemetry.AttrTaskKind].AsString())

	// consumer: child of the producer span (remote parent, through the
	// task headers), same trace, no link needed
	require.Equal(t, trace.SpanKindConsumer, cons.SpanKind)
	require.Equal(t, p.SpanContext.TraceID(), cons.SpanContext.TraceID())
	require.Equal(t, p.SpanContext.SpanID(), cons.Parent.SpanID())
	require.True(t, cons.Parent.IsRemote())
	require.Empty(t, cons.Links)
	ca := attrs(cons)
	require.Equal(t, "plba", ca[telemetry.AttrMessagingSystem].AsString())
	require.Equal(t, "billing", ca[telemetry.AttrMessagingDestination].AsString())
	require.Equal(t, tk.ID, ca[telemetry.AttrMessagingMessageID].AsString())
	require.Equal(t, "process", ca[telemetry.AttrMessagingOperationType].AsString())
	require.Equal(t, "invoice.create", ca[telemetry.AttrTaskKind].AsString())
	require.Equal(t, int64(1), ca[telemetry.AttrTaskAttempt].AsInt64())
	require.Equal(t, "succeeded", ca[telemetry.AttrTaskOutcome].AsString())
	require.Equal(t, codes.Unset, cons.Status.Code)

	// the handler ran under the consumer span
	require.Equal(t, cons.SpanContext.SpanID(), rec.get(1).SpanID())
	require.Equal(t, cons.SpanContext.TraceID(), rec.get(1).TraceID())
}

func TestRuntimeRetryMakesTwoConsumerSpans(t *testing.T) {
	t.Parallel()
	var rec recorder
	h := startHost(t, newBackend(t), hostOpts{routes: []task.Route{{
		Kind: "mail.parse", Queue: "mail",
		Handler: task.HandlerFunc(func(ctx context.Context, tk *task.Task) error {
			rec.record(ctx, tk)
			if tk.Attempt == 1 {
				return task.RetryAfter(10*time.Millisecond, errors.New("smtp busy"))
			}
			return nil
		}),
	}}})
	ctx, parent := h.tel.TracerProvider().Tracer("test").Start(context.Background(), "poll")
	require.NoError(t, h.enq.Enqueue(ctx, &task.Task{Kind: "mail.parse"}))
	parent.End()

	cons := h.waitSpans(t, "mail process", 2)
	prod := byName(t, h.flushed(t), "mail publish")
	require.Len(t, prod, 1)
	byAttempt := map[int64]tracetest.SpanStub{}
	for _, c := range cons {
		byAttempt[attrs(c)[telemetry.AttrTaskAttempt].AsInt64()] = c
	}
	require.Len(t, byAttempt, 2, "attempts 1 and 2")
	first, second := byAttempt[1], byAttempt[2]

	require.Equal(t, codes.Error, first.Status.Code)
	require.Contains(t, first.Status.Description, "smtp busy")
	require.True(t, attrs(first)[telemetry.AttrTaskRetry].AsBool())
	require.Equal(t, "retried", attrs(first)[telemetry.AttrTaskOutcome].AsString())
	require.Equal(t, codes.Unset, second.Status.Code)
	require.Equal(t, "succeeded", attrs(second)[telemetry.AttrTaskOutcome].AsString())
	for _, c := range cons {
		require.Equal(t, parent.SpanContext().TraceID(), c.SpanContext.TraceID())
		require.Equal(t, prod[0].SpanContext.SpanID(), c.Parent.SpanID(), "every attempt is a child of the producer")
	}
	require.NotEqual(t, first.SpanContext.SpanID(), second.SpanContext.SpanID())
	require.Equal(t, first.SpanContext.SpanID(), rec.get(1).SpanID())
	require.Equal(t, second.SpanContext.SpanID(), rec.get(2).SpanID())
}

func TestRuntimeDeadLetterEvent(t *testing.T) {
	t.Parallel()
	be := newBackend(t)
	h := startHost(t, be, hostOpts{routes: []task.Route{{
		Kind: "order.store", Queue: "orders",
		Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			return task.Permanent(errors.New("bad order"))
		}),
	}}})
	tk := &task.Task{Kind: "order.store"}
	require.NoError(t, h.enq.Enqueue(context.Background(), tk))

	c := h.waitSpans(t, "orders process", 1)[0]
	require.Equal(t, codes.Error, c.Status.Code)
	require.Equal(t, "dead_lettered", attrs(c)[telemetry.AttrTaskOutcome].AsString())
	var reasons []string
	for _, ev := range c.Events {
		if ev.Name != telemetry.EventDeadLetter {
			continue
		}
		for _, kv := range ev.Attributes {
			if kv.Key == telemetry.AttrDeadLetterReason {
				reasons = append(reasons, kv.Value.AsString())
			}
		}
	}
	require.Equal(t, []string{"bad order"}, reasons, "events: %+v", c.Events)
	dl, err := be.ListDead(context.Background(), "orders", 0)
	require.NoError(t, err)
	require.Len(t, dl, 1)
	require.Equal(t, tk.ID, dl[0].Task.ID)
}

// TestRuntimeTraceCrossesApps enqueues in one fx app and handles in
// another (separate tracer providers and exporters) sharing the backend:
// only the task headers carry the trace across.
func TestRuntimeTraceCrossesApps(t *testing.T) {
	t.Parallel()
	be := newBackend(t)
	var rec recorder
	consumer := startHost(t, be, hostOpts{routes: []task.Route{{
		Kind: "report.render", Queue: "reports",
		Handler: task.HandlerFunc(func(ctx context.Context, tk *task.Task) error {
			rec.record(ctx, tk)
			return nil
		}),
	}}})
	producer := startHost(t, be, hostOpts{}) // no route, no pool for "reports"

	ctx, root := producer.tel.TracerProvider().Tracer("test").Start(context.Background(), "request")
	require.NoError(t, producer.enq.Enqueue(ctx, &task.Task{Kind: "report.render", Queue: "reports"}))
	root.End()

	cons := consumer.waitSpans(t, "reports process", 1)[0]
	prod := byName(t, producer.flushed(t), "reports publish")
	require.Len(t, prod, 1)
	require.Empty(t, byName(t, producer.flushed(t), "reports process"), "the producer app did not handle it")
	require.Empty(t, byName(t, consumer.flushed(t), "reports publish"), "the consumer app did not produce it")

	require.Equal(t, root.SpanContext().TraceID(), prod[0].SpanContext.TraceID())
	require.Equal(t, root.SpanContext().TraceID(), cons.SpanContext.TraceID())
	require.Equal(t, prod[0].SpanContext.SpanID(), cons.Parent.SpanID())
	require.True(t, cons.Parent.IsRemote())
	require.Equal(t, cons.SpanContext.SpanID(), rec.get(1).SpanID())
}

// TestRuntimeHandlerLogCarriesTrace checks that a line a handler writes
// through the platform's context logger names its span and task.
func TestRuntimeHandlerLogCarriesTrace(t *testing.T) {
	t.Parallel()
	var h *host
	ready := make(chan struct{})
	h = startHost(t, newBackend(t), hostOpts{routes: []task.Route{{
		Kind: "invoice.send", Queue: "billing",
		Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
			<-ready
			log.FromContext(ctx, h.log).Info("sending invoice", zap.String("customer", "c-42"))
			return nil
		}),
	}}})
	close(ready)
	tk := &task.Task{Kind: "invoice.send"}
	require.NoError(t, h.enq.Enqueue(context.Background(), tk))

	cons := h.waitSpans(t, "billing process", 1)[0]
	lines := h.logs.FilterMessage("sending invoice").All()
	require.Len(t, lines, 1)
	f := lines[0].ContextMap()
	require.Equal(t, cons.SpanContext.TraceID().String(), f[telemetry.FieldTraceID])
	require.Equal(t, cons.SpanContext.SpanID().String(), f[telemetry.FieldSpanID])
	require.Equal(t, tk.ID, f[telemetry.FieldTaskID])
	require.Equal(t, "invoice.send", f[telemetry.FieldKind])
	require.Equal(t, "billing", f[telemetry.FieldQueue])
	require.EqualValues(t, 1, f[telemetry.FieldAttempt])
	require.Equal(t, "c-42", f["customer"])
}

// TestRuntimeMetricsScrape runs tasks of known outcomes through the
// runtime and reads the counters, histograms and queue gauges back from
// GET /metrics on the admin server, where telemetry.Module mounted it.
func TestRuntimeMetricsScrape(t *testing.T) {
	t.Parallel()
	be := newBackend(t)
	h := startHost(t, be, hostOpts{admin: true, routes: []task.Route{{
		Kind: "invoice.create", Queue: "billing",
		Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
			switch string(tk.Payload) {
			case "flaky":
				if tk.Attempt == 1 {
					return task.RetryAfter(5*time.Millisecond, errors.New("try again"))
				}
			case "bad":
				return task.Permanent(errors.New("bad invoice"))
			}
			return nil
		}),
	}}})
	const ok, flaky, bad = 5, 3, 2
	var tasks []*task.Task
	for i := range ok + flaky + bad {
		p := "ok"
		switch {
		case i >= ok+flaky:
			p = "bad"
		case i >= ok:
			p = "flaky"
		}
		tasks = append(tasks, &task.Task{Kind: "invoice.create", Payload: []byte(p)})
	}
	require.NoError(t, h.enq.Enqueue(context.Background(), tasks...))

	url := "http://" + h.srv.Addr() + telemetry.MetricsPath
	base := map[string]string{"queue": "billing", "kind": "invoice.create"}
	with := func(outcome string) map[string]string {
		m := map[string]string{"outcome": outcome}
		for k, v := range base {
			m[k] = v
		}
		return m
	}
	settled := func() bool {
		mfs := scrapeURL(t, url)
		return counterOr0(mfs, "plba_task_processed_total", with("succeeded")) == ok+flaky &&
			counterOr0(mfs, "plba_task_processed_total", with("dead_lettered")) == bad
	}
	require.Eventually(t, settled, 15*time.Second, 20*time.Millisecond)

	mfs := scrapeURL(t, url)
	require.Equal(t, float64(ok+flaky+bad), promValue(t, mfs, "plba_task_enqueued_total", with("ok")))
	require.Equal(t, float64(ok+flaky), promValue(t, mfs, "plba_task_processed_total", with("succeeded")))
	require.Equal(t, float64(flaky), promValue(t, mfs, "plba_task_processed_total", with("retried")))
	require.Equal(t, float64(bad), promValue(t, mfs, "plba_task_processed_total", with("dead_lettered")))
	require.Equal(t, float64(flaky), promValue(t, mfs, "plba_task_failed_total", with("retried")))
	require.Equal(t, float64(bad), promValue(t, mfs, "plba_task_failed_total", with("dead_lettered")))
	require.Equal(t, float64(flaky), promValue(t, mfs, "plba_task_retried_total", with("retried")))
	require.Equal(t, float64(bad), promValue(t, mfs, "plba_task_dead_lettered_total", with("dead_lettered")))
	require.Equal(t, uint64(ok+flaky), promHistCount(t, mfs, "plba_task_duration_seconds", with("succeeded")))
	require.Equal(t, uint64(flaky), promHistCount(t, mfs, "plba_task_duration_seconds", with("retried")))
	require.Equal(t, uint64(bad), promHistCount(t, mfs, "plba_task_duration_seconds", with("dead_lettered")))
	require.Equal(t, uint64(ok+flaky+bad), promHistCount(t, mfs, "plba_task_queue_wait_seconds", base), "first attempts only")
	_, hasFailedOK := findSeries(mfs, "plba_task_failed_total", with("succeeded"))
	require.False(t, hasFailedOK, "successes are not failures")

	q := map[string]string{"queue": "billing"}
	require.Equal(t, float64(bad), gaugeOr(t, mfs, "plba_queue_dead", q))
	require.Equal(t, float64(0), gaugeOr(t, mfs, "plba_queue_depth", q))
	require.Equal(t, float64(0), gaugeOr(t, mfs, "plba_queue_in_flight", q))

	resp, err := http.Get("http://" + h.srv.Addr() + "/admin/v1/status")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode, "the admin server's own routes are still there")
}

// scrapeURL fetches and parses a Prometheus exposition.
func scrapeURL(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return mfs
}

// findSeries returns the series of name with exactly labels (apart from
// the scope labels).
func findSeries(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) (*dto.Metric, bool) {
	mf, ok := mfs[name]
	if !ok {
		return nil, false
	}
	for _, m := range mf.GetMetric() {
		if matches(m.GetLabel(), labels) {
			return m, true
		}
	}
	return nil, false
}

// counterOr0 is the counter's value, 0 while the series does not exist.
func counterOr0(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) int {
	m, ok := findSeries(mfs, name, labels)
	if !ok {
		return 0
	}
	return int(m.GetCounter().GetValue())
}

// gaugeOr is the gauge's value; the series must exist.
func gaugeOr(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m, ok := findSeries(mfs, name, labels)
	require.True(t, ok, "series %s%v missing", name, labels)
	return m.GetGauge().GetValue()
}

// TestRuntimeSourcePollIsParentSpan runs a polling source in the runtime
// (the supervisor observes it through telemetry's source.Observer): the poll is a span, the tasks it
// emits are its children (and their deliveries theirs), its log lines
// carry the poll's trace, and the emits are counted.
func TestRuntimeSourcePollIsParentSpan(t *testing.T) {
	t.Parallel()
	be := newBackend(t)
	core, logs := observer.New(zap.InfoLevel)
	pollLog := zap.New(core)
	var polled atomic.Bool
	poll := func(ctx context.Context, emit source.Emitter) error {
		if polled.Swap(true) {
			return nil
		}
		log.FromContext(ctx, pollLog).Info("found mail", zap.Int("count", 2))
		return emit.Emit(ctx, &task.Task{Kind: "mail.received"}, &task.Task{Kind: "mail.received"})
	}
	h := startHostWith(t, be, hostOpts{routes: []task.Route{{
		Kind: "mail.received", Queue: "mail",
		Handler: task.HandlerFunc(func(context.Context, *task.Task) error { return nil }),
	}}}, fx.Provide(source.AsSource(func() *source.Poller {
		return source.Poll("inbox", time.Hour, 0, poll)
	})))

	cons := h.waitSpans(t, "mail process", 2)
	spans := h.flushed(t)
	polls := byName(t, spans, "inbox poll")
	require.Len(t, polls, 1)
	pollSpan := polls[0]
	prods := byName(t, spans, "mail publish")
	require.Len(t, prods, 2)
	prodIDs := map[trace.SpanID]bool{}
	for _, p := range prods {
		require.Equal(t, pollSpan.SpanContext.SpanID(), p.Parent.SpanID(), "emitted tasks are children of the poll")
		require.Equal(t, pollSpan.SpanContext.TraceID(), p.SpanContext.TraceID())
		prodIDs[p.SpanContext.SpanID()] = true
	}
	for _, c := range cons {
		require.True(t, prodIDs[c.Parent.SpanID()], "each delivery is a child of its producer span")
		require.Equal(t, pollSpan.SpanContext.TraceID(), c.SpanContext.TraceID())
	}
	require.Equal(t, "inbox", attrs(pollSpan)[telemetry.AttrSourceName].AsString())

	lines := logs.FilterMessage("found mail").All()
	require.Len(t, lines, 1)
	f := lines[0].ContextMap()
	require.Equal(t, pollSpan.SpanContext.TraceID().String(), f[telemetry.FieldTraceID])
	require.Equal(t, pollSpan.SpanContext.SpanID().String(), f[telemetry.FieldSpanID])
	require.Equal(t, "inbox", f[telemetry.FieldSource])

	mfs := scrape(t, h.tel.MetricsHandler())
	require.Equal(t, float64(2), promValue(t, mfs, "plba_source_emitted_total", map[string]string{"source": "inbox"}))
	_, failed := findSeries(mfs, "plba_source_errors_total", map[string]string{"source": "inbox"})
	require.False(t, failed)
}

// keepingExporter keeps its spans across Shutdown (tracetest's exporter
// forgets them there) and remembers how many it had when shut down.
type keepingExporter struct {
	mu         sync.Mutex
	spans      tracetest.SpanStubs
	atShutdown int
	shutdowns  int
}

func (e *keepingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.spans = append(e.spans, tracetest.SpanStubsFromReadOnlySpans(spans)...)
	return nil
}

func (e *keepingExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.shutdowns++
	e.atShutdown = len(e.spans)
	return nil
}

// TestRuntimeStopFlushesAfterDrain stops the host while a handler runs:
// the pool drains first, then telemetry flushes, so the span of that last
// delivery is exported before the exporter shuts down. The batch timeout
// is far beyond the test, so only the flush on stop can export it.
func TestRuntimeStopFlushesAfterDrain(t *testing.T) {
	t.Parallel()
	be := newBackend(t)
	exp := &keepingExporter{}
	cfg := telemetry.Config{}
	cfg.Traces.Sampler = telemetry.SamplerAlways
	cfg.Traces.BatchTimeout = time.Hour
	cfg.Metrics.Enabled = telemetry.Bool(false)
	started := make(chan struct{})
	var enq task.Enqueuer
	app := fxtest.New(t,
		fx.NopLogger,
		// A drain timeout far beyond the handler's run, however busy the machine.
		fx.Supply(cfg, worker.Config{task.DefaultQueue: worker.PoolConfig{DrainTimeout: 10 * time.Second}}, lifecycle.NewRegistry(nil, nil)),
		fx.Provide(func() queue.Backend { return be }),
		telemetry.WithOptions(telemetry.WithSpanExporter(exp)),
		telemetry.Module,
		worker.Module,
		worker.SupplyRoute(task.Route{Kind: "report.build", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			close(started)
			time.Sleep(200 * time.Millisecond) // still running when the host stops
			return nil
		})}),
		fx.Populate(&enq),
	)
	app.RequireStart()
	require.NoError(t, enq.Enqueue(context.Background(), &task.Task{Kind: "report.build"}))
	<-started
	app.RequireStop()

	exp.mu.Lock()
	defer exp.mu.Unlock()
	require.Equal(t, 1, exp.shutdowns)
	require.Len(t, byName(t, exp.spans, "default publish"), 1)
	cons := byName(t, exp.spans, "default process")
	require.Len(t, cons, 1, "the drained delivery's span was flushed")
	require.Equal(t, "succeeded", attrs(cons[0])[telemetry.AttrTaskOutcome].AsString())
	require.Equal(t, len(exp.spans), exp.atShutdown, "exported before the exporter shut down")
}

// TestRuntimeBaggageReachesHandler: W3C baggage set where a task is
// enqueued travels in its headers to the handler's context.
func TestRuntimeBaggageReachesHandler(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	h := startHost(t, newBackend(t), hostOpts{routes: []task.Route{{
		Kind: "invoice.create",
		Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
			got <- baggage.FromContext(ctx).Member("tenant").Value()
			return nil
		}),
	}}})
	m, err := baggage.NewMember("tenant", "acme")
	require.NoError(t, err)
	bg, err := baggage.New(m)
	require.NoError(t, err)
	tk := &task.Task{Kind: "invoice.create"}
	require.NoError(t, h.enq.Enqueue(baggage.ContextWithBaggage(context.Background(), bg), tk))
	require.Equal(t, "tenant=acme", tk.Headers["baggage"])
	select {
	case v := <-got:
		require.Equal(t, "acme", v)
	case <-time.After(15 * time.Second):
		t.Fatal("handler not called")
	}
}

// TestRuntimeCountsTheBackendsOwnDeadLetters: a task the backend
// dead-letters on its own (queue.DeadWatcher: JetStream after its
// maximum deliveries, memory after Options.MaxDeliveries expired leases)
// is a task moved to the dead letter, and plba.task.dead_lettered counts
// it, as the pool's Stats.Dead does. The metric counted only the dead
// letters a pool's settlement made, so a task that crashed or hung its
// consumers until the backend gave up on it (the poison message an
// operator most wants to see) never showed there.
func TestRuntimeCountsTheBackendsOwnDeadLetters(t *testing.T) {
	t.Parallel()
	be := memory.New(memory.Options{MaxDeliveries: 1})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	var rt *worker.Runtime
	h := startHostWith(t, be, hostOpts{routes: []task.Route{{
		Kind: "order.store", Queue: "orders",
		Handler: task.HandlerFunc(func(context.Context, *task.Task) error { return nil }),
	}}}, fx.Populate(&rt))
	p, ok := rt.Pool("orders")
	require.True(t, ok)
	p.Pause() // a consumer elsewhere takes the task instead
	require.NoError(t, h.enq.Enqueue(context.Background(), &task.Task{Kind: "order.store"}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := be.Lease(ctx, "orders", 1, 20*time.Millisecond) // and dies
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Eventually(t, func() bool {
		_, _ = be.Stats(context.Background(), "orders") // the backend notices the expired lease
		return p.Stats().Dead == 1
	}, 10*time.Second, 5*time.Millisecond)

	mfs := scrape(t, h.tel.MetricsHandler())
	labels := map[string]string{"queue": "orders", "kind": "order.store", "outcome": "dead_lettered"}
	require.Equal(t, float64(1), promValue(t, mfs, "plba_task_dead_lettered_total", labels))
	_, processed := findSeries(mfs, "plba_task_processed_total", labels)
	require.False(t, processed, "no delivery of this host was settled")
}

// TestRuntimeCountsDroppedDuplicatesApart: a task the backend dropped at
// Enqueue as a duplicate (marked task.Held or task.Finished) is counted
// on plba.task.enqueued with outcome "duplicate", not "ok": it was
// counted as handed over and stored, so the enqueue rate of a source
// emitting again what was queued already overstated what reached the
// queue.
func TestRuntimeCountsDroppedDuplicatesApart(t *testing.T) {
	t.Parallel()
	be := newBackend(t)
	var rt *worker.Runtime
	h := startHostWith(t, be, hostOpts{routes: []task.Route{{
		Kind: "order.store", Queue: "orders",
		Handler: task.HandlerFunc(func(context.Context, *task.Task) error { return nil }),
	}}}, fx.Populate(&rt))
	p, ok := rt.Pool("orders")
	require.True(t, ok)
	p.Pause() // the first stays queued and holds its key
	ctx := context.Background()
	require.NoError(t, h.enq.Enqueue(ctx, &task.Task{Kind: "order.store", Key: "o1"}))
	dup := &task.Task{Kind: "order.store", Key: "o1"}
	require.NoError(t, h.enq.Enqueue(ctx, dup, &task.Task{Kind: "order.store", Key: "o2"}))
	_, held := task.Held(dup)
	require.True(t, held)

	mfs := scrape(t, h.tel.MetricsHandler())
	with := func(outcome string) map[string]string {
		return map[string]string{"queue": "orders", "kind": "order.store", "outcome": outcome}
	}
	require.Equal(t, float64(2), promValue(t, mfs, "plba_task_enqueued_total", with("ok")))
	require.Equal(t, float64(1), promValue(t, mfs, "plba_task_enqueued_total", with("duplicate")))
}

// A delivery settled without running a handler (here: a task of a kind
// no route handles, dead-lettered by the pool) adds no sample to
// plba.task.duration, the handlers' run time; it is counted as processed
// and dead-lettered. Before, it recorded a run time of 0 s, which pulled
// the kind's quantiles towards zero.
func TestDeliveryWithoutAHandlerRecordsNoDuration(t *testing.T) {
	t.Parallel()
	be := newBackend(t)
	h := startHost(t, be, hostOpts{admin: true, routes: []task.Route{{
		Kind: "invoice.create", Queue: "billing",
		Handler: task.HandlerFunc(func(context.Context, *task.Task) error { return nil }),
	}}})
	orphan := &task.Task{Kind: "invoice.lost", Queue: "billing"}
	orphan.Prepare(time.Now())
	require.NoError(t, be.Enqueue(context.Background(), orphan))
	require.NoError(t, h.enq.Enqueue(context.Background(), &task.Task{Kind: "invoice.create"}))

	url := "http://" + h.srv.Addr() + telemetry.MetricsPath
	lost := map[string]string{"queue": "billing", "kind": "invoice.lost", "outcome": "dead_lettered"}
	created := map[string]string{"queue": "billing", "kind": "invoice.create", "outcome": "succeeded"}
	require.Eventually(t, func() bool {
		mfs := scrapeURL(t, url)
		return counterOr0(mfs, "plba_task_dead_lettered_total", lost) == 1 &&
			counterOr0(mfs, "plba_task_processed_total", created) == 1
	}, 15*time.Second, 20*time.Millisecond)
	mfs := scrapeURL(t, url)
	require.Equal(t, float64(1), promValue(t, mfs, "plba_task_processed_total", lost))
	if m, ok := findSeries(mfs, "plba_task_duration_seconds", lost); ok {
		require.Zero(t, m.GetHistogram().GetSampleCount(), "a run time recorded for a delivery that ran no handler")
	}
	require.Equal(t, uint64(1), promHistCount(t, mfs, "plba_task_duration_seconds", created))
}

// TestRuntimeCountsATaskStoredAgainOnce: a task enqueued again while the
// backend stores it already (the same task emitted again, after an
// Enqueue whose outcome was unknown, say: marked task.StoredAgain) was
// stored by the first Enqueue alone. It was counted on plba.task.enqueued
// with outcome "ok" a second time, as stored again; it is "duplicate"
// now, nothing stored, as the producer's own count (the admin API's
// enqueue rate) has it.
func TestRuntimeCountsATaskStoredAgainOnce(t *testing.T) {
	t.Parallel()
	be := newBackend(t)
	var rt *worker.Runtime
	h := startHostWith(t, be, hostOpts{routes: []task.Route{{
		Kind: "order.store", Queue: "orders",
		Handler: task.HandlerFunc(func(context.Context, *task.Task) error { return nil }),
	}}}, fx.Populate(&rt))
	p, ok := rt.Pool("orders")
	require.True(t, ok)
	p.Pause() // the task stays stored
	ctx := context.Background()
	tk := &task.Task{Kind: "order.store", Key: "o1"}
	require.NoError(t, h.enq.Enqueue(ctx, tk))
	require.NoError(t, h.enq.Enqueue(ctx, tk))
	require.True(t, task.StoredAgain(tk))

	mfs := scrape(t, h.tel.MetricsHandler())
	with := func(outcome string) map[string]string {
		return map[string]string{"queue": "orders", "kind": "order.store", "outcome": outcome}
	}
	require.Equal(t, float64(1), promValue(t, mfs, "plba_task_enqueued_total", with("ok")))
	require.Equal(t, float64(1), promValue(t, mfs, "plba_task_enqueued_total", with("duplicate")))
	require.Equal(t, map[string]int64{"orders": 1}, rt.Producer().Enqueued())
}
