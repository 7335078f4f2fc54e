package telemetry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	otlpmetrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/telemetry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testBundle is one Telemetry with an in-memory span exporter behind the
// batch processor and a manual metric reader.
type testBundle struct {
	tel    *telemetry.Telemetry
	obs    *telemetry.Observer
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
}

func setup(t testing.TB, mutate ...func(*telemetry.Config)) *testBundle {
	t.Helper()
	cfg := telemetry.Config{}
	cfg.Metrics.Runtime = telemetry.Bool(false)
	cfg.Traces.Sampler = telemetry.SamplerAlways
	for _, m := range mutate {
		m(&cfg)
	}
	b := &testBundle{spans: tracetest.NewInMemoryExporter()}
	tel, err := telemetry.New(context.Background(), cfg,
		telemetry.WithSpanExporter(b.spans), telemetry.WithMetricReader(func(p sdkmetric.Producer) sdkmetric.Reader {
			b.reader = sdkmetric.NewManualReader(sdkmetric.WithProducer(p))
			return b.reader
		}))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	b.tel = tel
	obs, ok := tel.Observer().(*telemetry.Observer)
	require.True(t, ok, "observer is %T", tel.Observer())
	b.obs = obs
	return b
}

// ended returns the spans exported so far (after a flush).
func (b *testBundle) ended(t testing.TB) tracetest.SpanStubs {
	t.Helper()
	require.NoError(t, b.tel.ForceFlush(context.Background()))
	return b.spans.GetSpans()
}

func (b *testBundle) collect(t testing.TB) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, b.reader.Collect(context.Background(), &rm))
	return rm
}

func newTask(kind, queue string) *task.Task {
	t := &task.Task{Kind: kind, Queue: queue, Payload: []byte("{}")}
	t.Prepare(time.Now())
	return t
}

// deliver runs one delivery of t through obs: Starting, the handler, Finished.
func deliver(ctx context.Context, obs task.Observer, t *task.Task, attempt int, out task.Outcome, err error, reason string, handler func(ctx context.Context)) {
	t.Attempt = attempt
	hctx := obs.Starting(ctx, t)
	if handler != nil {
		handler(hctx)
	}
	obs.Finished(hctx, t, out, err, reason, 3*time.Millisecond)
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value, len(s.Attributes))
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

func byName(t testing.TB, spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
	t.Helper()
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func TestProducerAndConsumerShareTheTrace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, parent := b.tel.TracerProvider().Tracer("test").Start(context.Background(), "handler")
	tk := newTask("invoice.create", "billing")

	ectx := b.obs.Enqueuing(ctx, []*task.Task{tk})
	b.obs.Enqueued(ectx, []*task.Task{tk}, nil)
	parent.End()
	require.NotEmpty(t, tk.Headers["traceparent"])

	// The worker's context carries no span.
	deliver(context.Background(), b.obs, tk, 1, task.Succeeded, nil, "", nil)

	spans := b.ended(t)
	prod := byName(t, spans, "billing publish")
	cons := byName(t, spans, "billing process")
	require.Len(t, prod, 1)
	require.Len(t, cons, 1)
	p, c := prod[0], cons[0]

	require.Equal(t, parent.SpanContext().TraceID(), p.SpanContext.TraceID())
	require.Equal(t, parent.SpanContext().SpanID(), p.Parent.SpanID())
	require.Equal(t, p.SpanContext.TraceID(), c.SpanContext.TraceID())
	require.Equal(t, p.SpanContext.SpanID(), c.Parent.SpanID())
	require.True(t, c.Parent.IsRemote())
	require.Equal(t, trace.SpanKindProducer, p.SpanKind)
	require.Equal(t, trace.SpanKindConsumer, c.SpanKind)

	pa := attrs(p)
	require.Equal(t, "plba", pa[telemetry.AttrMessagingSystem].AsString())
	require.Equal(t, "billing", pa[telemetry.AttrMessagingDestination].AsString())
	require.Equal(t, tk.ID, pa[telemetry.AttrMessagingMessageID].AsString())
	require.Equal(t, "send", pa[telemetry.AttrMessagingOperationType].AsString())
	require.Equal(t, "invoice.create", pa[telemetry.AttrTaskKind].AsString())

	ca := attrs(c)
	require.Equal(t, "process", ca[telemetry.AttrMessagingOperationType].AsString())
	require.Equal(t, "billing", ca[telemetry.AttrMessagingDestination].AsString())
	require.Equal(t, tk.ID, ca[telemetry.AttrMessagingMessageID].AsString())
	require.Equal(t, "invoice.create", ca[telemetry.AttrTaskKind].AsString())
	require.Equal(t, int64(1), ca[telemetry.AttrTaskAttempt].AsInt64())
	require.Equal(t, "succeeded", ca[telemetry.AttrTaskOutcome].AsString())
	require.Equal(t, codes.Unset, c.Status.Code)
}

func TestEnqueueFailureSetsErrorStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tasks := []*task.Task{newTask("a", "q"), newTask("b", "q")}
	ctx := b.obs.Enqueuing(context.Background(), tasks)
	b.obs.Enqueued(ctx, tasks, errors.New("backend down"))
	prod := byName(t, b.ended(t), "q publish")
	require.Len(t, prod, 2)
	for _, s := range prod {
		require.Equal(t, codes.Error, s.Status.Code)
		require.Equal(t, "backend down", s.Status.Description)
	}
	// Each task got its own producer span, hence its own traceparent.
	require.NotEqual(t, tasks[0].Headers["traceparent"], tasks[1].Headers["traceparent"])
}

func TestRetryMakesTwoConsumerSpans(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tk := newTask("mail.parse", "mail")
	ctx := b.obs.Enqueuing(context.Background(), []*task.Task{tk})
	b.obs.Enqueued(ctx, []*task.Task{tk}, nil)

	deliver(context.Background(), b.obs, tk, 1, task.Retried, errors.New("smtp busy"), "", nil)
	deliver(context.Background(), b.obs, tk, 2, task.Succeeded, nil, "", nil)

	spans := b.ended(t)
	prod := byName(t, spans, "mail publish")
	cons := byName(t, spans, "mail process")
	require.Len(t, prod, 1)
	require.Len(t, cons, 2)
	first, second := cons[0], cons[1]
	require.Equal(t, int64(1), attrs(first)[telemetry.AttrTaskAttempt].AsInt64())
	require.Equal(t, int64(2), attrs(second)[telemetry.AttrTaskAttempt].AsInt64())
	require.True(t, attrs(first)[telemetry.AttrTaskRetry].AsBool())
	_, retried := attrs(second)[telemetry.AttrTaskRetry]
	require.False(t, retried)
	require.Equal(t, codes.Error, first.Status.Code)
	require.Equal(t, "smtp busy", first.Status.Description)
	require.Equal(t, codes.Unset, second.Status.Code)
	for _, c := range cons {
		require.Equal(t, prod[0].SpanContext.SpanID(), c.Parent.SpanID(), "both attempts are children of the producer")
	}
	require.NotEqual(t, first.SpanContext.SpanID(), second.SpanContext.SpanID())
}

func TestDeadLetterEventCarriesReason(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tk := newTask("order.store", "orders")
	ctx := b.obs.Enqueuing(context.Background(), []*task.Task{tk})
	b.obs.Enqueued(ctx, []*task.Task{tk}, nil)
	cause := task.Permanent(errors.New("bad order"))
	deliver(context.Background(), b.obs, tk, 1, task.DeadLettered, cause, "permanent: bad order", nil)

	cons := byName(t, b.ended(t), "orders process")
	require.Len(t, cons, 1)
	c := cons[0]
	require.Equal(t, codes.Error, c.Status.Code)
	var found bool
	for _, ev := range c.Events {
		if ev.Name != telemetry.EventDeadLetter {
			continue
		}
		for _, kv := range ev.Attributes {
			if kv.Key == telemetry.AttrDeadLetterReason {
				require.Equal(t, "permanent: bad order", kv.Value.AsString())
				found = true
			}
		}
	}
	require.True(t, found, "dead_letter event with reason, events: %+v", c.Events)
}

func TestContextCrossesProcessBoundary(t *testing.T) {
	t.Parallel()
	producer := setup(t)
	consumer := setup(t) // another TracerProvider, another exporter

	ctx, root := producer.tel.TracerProvider().Tracer("test").Start(context.Background(), "request")
	sent := newTask("report.render", "reports")
	ectx := producer.obs.Enqueuing(ctx, []*task.Task{sent})
	producer.obs.Enqueued(ectx, []*task.Task{sent}, nil)
	root.End()

	// Only the wire form travels: a fresh struct with copied headers.
	received := &task.Task{ID: sent.ID, Kind: sent.Kind, Queue: sent.Queue, Headers: map[string]string{}}
	for k, v := range sent.Headers {
		received.Headers[k] = v
	}
	var handlerSC trace.SpanContext
	deliver(context.Background(), consumer.obs, received, 1, task.Succeeded, nil, "", func(ctx context.Context) {
		handlerSC = trace.SpanContextFromContext(ctx)
	})

	prod := byName(t, producer.ended(t), "reports publish")
	cons := byName(t, consumer.ended(t), "reports process")
	require.Len(t, prod, 1)
	require.Len(t, cons, 1)
	require.Empty(t, byName(t, consumer.ended(t), "reports publish"))
	require.Equal(t, root.SpanContext().TraceID(), cons[0].SpanContext.TraceID())
	require.Equal(t, prod[0].SpanContext.SpanID(), cons[0].Parent.SpanID())
	require.Equal(t, cons[0].SpanContext.SpanID(), handlerSC.SpanID(), "the handler runs under the consumer span")
}

func TestBatchContextLinksToProducer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tk := newTask("k", "q")
	ectx := b.obs.Enqueuing(context.Background(), []*task.Task{tk})
	b.obs.Enqueued(ectx, []*task.Task{tk}, nil)

	bctx, batch := b.tel.TracerProvider().Tracer("test").Start(context.Background(), "batch")
	deliver(bctx, b.obs, tk, 1, task.Succeeded, nil, "", nil)
	batch.End()

	spans := b.ended(t)
	prod := byName(t, spans, "q publish")[0]
	cons := byName(t, spans, "q process")[0]
	require.Equal(t, batch.SpanContext().TraceID(), cons.SpanContext.TraceID())
	require.Equal(t, batch.SpanContext().SpanID(), cons.Parent.SpanID())
	require.Len(t, cons.Links, 1)
	require.Equal(t, prod.SpanContext.SpanID(), cons.Links[0].SpanContext.SpanID())
	require.Equal(t, prod.SpanContext.TraceID(), cons.Links[0].SpanContext.TraceID())
}

func TestUnsampledTasksStillPropagate(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *telemetry.Config) { c.Traces.Sampler = telemetry.SamplerNever })
	tk := newTask("k", "q")
	ectx := b.obs.Enqueuing(context.Background(), []*task.Task{tk})
	b.obs.Enqueued(ectx, []*task.Task{tk}, nil)
	require.Contains(t, tk.Headers["traceparent"], "-00", "unsampled flag")
	var sc trace.SpanContext
	deliver(context.Background(), b.obs, tk, 1, task.Succeeded, nil, "", func(ctx context.Context) {
		sc = trace.SpanContextFromContext(ctx)
	})
	require.True(t, sc.IsValid())
	require.Contains(t, tk.Headers["traceparent"], sc.TraceID().String())
	require.Empty(t, b.ended(t))
}

func TestPollSpanParentsEmittedTasks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	so := b.tel.SourceObserver()
	ctx, end := so.StartPoll(context.Background(), "inbox")
	tk := newTask("mail.received", "mail")
	ectx := b.obs.Enqueuing(ctx, []*task.Task{tk})
	b.obs.Enqueued(ectx, []*task.Task{tk}, nil)
	so.Emitted(ctx, "inbox", 1)
	end(nil)
	_, end2 := so.StartPoll(context.Background(), "inbox")
	end2(errors.New("imap: connection reset"))

	spans := b.ended(t)
	polls := byName(t, spans, "inbox poll")
	require.Len(t, polls, 2)
	prod := byName(t, spans, "mail publish")[0]
	require.Equal(t, polls[0].SpanContext.SpanID(), prod.Parent.SpanID())
	require.Equal(t, codes.Error, polls[1].Status.Code)

	rm := b.collect(t)
	require.Equal(t, int64(1), sumCounter(t, rm, "plba.source.emitted", map[string]string{"source": "inbox"}))
	require.Equal(t, int64(1), sumCounter(t, rm, "plba.source.errors", map[string]string{"source": "inbox"}))
}

// A poll cut short because its source is stopping (its context ended:
// the host stops, the lease of an exclusive source is lost) did not fail:
// it is not counted on plba.source.errors nor shown as an error span. A
// poll that fails while its source runs still is.
func TestPollEndedByItsStopIsNoError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	so := b.tel.SourceObserver()
	ctx, cancel := context.WithCancel(context.Background())
	pctx, end := so.StartPoll(ctx, "inbox")
	cancel()
	end(fmt.Errorf("schedule %q: emit: %w", "inbox", pctx.Err()))
	_, end2 := so.StartPoll(context.Background(), "inbox")
	end2(context.DeadlineExceeded) // the poll's own timeout: a failure

	polls := byName(t, b.ended(t), "inbox poll")
	require.Len(t, polls, 2)
	require.NotEqual(t, codes.Error, polls[0].Status.Code, "a stopped poll is no error")
	require.Equal(t, codes.Error, polls[1].Status.Code)
	rm := b.collect(t)
	require.Equal(t, int64(1), sumCounter(t, rm, "plba.source.errors", map[string]string{"source": "inbox"}))
}

func TestLogLinesCarryTraceID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	core, logs := newObservedLogger()
	tk := newTask("k", "q")
	ectx := b.obs.Enqueuing(context.Background(), []*task.Task{tk})
	b.obs.Enqueued(ectx, []*task.Task{tk}, nil)
	var sc trace.SpanContext
	deliver(context.Background(), b.obs, tk, 3, task.Succeeded, nil, "", func(ctx context.Context) {
		sc = trace.SpanContextFromContext(ctx)
		telemetry.Logger(ctx, core).Info("handling")
	})
	entries := logs.All()
	require.Len(t, entries, 1)
	fields := entries[0].ContextMap()
	require.Equal(t, sc.TraceID().String(), fields[telemetry.FieldTraceID])
	require.Equal(t, sc.SpanID().String(), fields[telemetry.FieldSpanID])
	require.Equal(t, tk.ID, fields[telemetry.FieldTaskID])
	require.Equal(t, "k", fields[telemetry.FieldKind])
	require.Equal(t, "q", fields[telemetry.FieldQueue])
	require.EqualValues(t, 3, fields[telemetry.FieldAttempt])

	f, ok := telemetry.FieldsFromContext(context.Background())
	require.False(t, ok)
	require.Equal(t, telemetry.DeliveryFields{}, f)
	require.Nil(t, telemetry.LogFields(context.Background()))
}

// TestMetricsScrape drives tasks of known outcomes and reads the counters
// and histogram counts back from the Prometheus handler.
func TestMetricsScrape(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const ok, retried, dead = 5, 3, 2
	all := make([]*task.Task, 0, ok+retried+dead)
	for range ok + retried + dead {
		tk := newTask("invoice.create", "billing")
		tk.EnqueuedAt = time.Now().Add(-2 * time.Second)
		all = append(all, tk)
	}
	ctx := b.obs.Enqueuing(context.Background(), all)
	b.obs.Enqueued(ctx, all, nil)
	failed := []*task.Task{newTask("invoice.create", "billing")}
	ctx = b.obs.Enqueuing(context.Background(), failed)
	b.obs.Enqueued(ctx, failed, errors.New("full"))

	for i, tk := range all {
		switch {
		case i < ok:
			deliver(context.Background(), b.obs, tk, 1, task.Succeeded, nil, "", nil)
		case i < ok+retried:
			deliver(context.Background(), b.obs, tk, 1, task.Retried, errors.New("later"), "", nil)
		default:
			deliver(context.Background(), b.obs, tk, 1, task.DeadLettered, errors.New("never"), "never", nil)
		}
	}

	mfs := scrape(t, b.tel.MetricsHandler())
	base := map[string]string{"queue": "billing", "kind": "invoice.create"}
	with := func(outcome string) map[string]string {
		m := map[string]string{"outcome": outcome}
		for k, v := range base {
			m[k] = v
		}
		return m
	}
	require.Equal(t, float64(ok+retried+dead), promValue(t, mfs, "plba_task_enqueued_total", with("ok")))
	require.Equal(t, float64(1), promValue(t, mfs, "plba_task_enqueued_total", with("error")))
	require.Equal(t, float64(ok), promValue(t, mfs, "plba_task_processed_total", with("succeeded")))
	require.Equal(t, float64(retried), promValue(t, mfs, "plba_task_processed_total", with("retried")))
	require.Equal(t, float64(dead), promValue(t, mfs, "plba_task_processed_total", with("dead_lettered")))
	require.Equal(t, float64(retried), promValue(t, mfs, "plba_task_failed_total", with("retried")))
	require.Equal(t, float64(dead), promValue(t, mfs, "plba_task_failed_total", with("dead_lettered")))
	require.Equal(t, float64(retried), promValue(t, mfs, "plba_task_retried_total", with("retried")))
	require.Equal(t, float64(dead), promValue(t, mfs, "plba_task_dead_lettered_total", with("dead_lettered")))
	require.Equal(t, uint64(ok), promHistCount(t, mfs, "plba_task_duration_seconds", with("succeeded")))
	require.Equal(t, uint64(ok+retried+dead), promHistCount(t, mfs, "plba_task_queue_wait_seconds", base))

	// The queue wait is about the 2s the tasks were backdated by.
	h := promHist(t, mfs, "plba_task_queue_wait_seconds", base)
	require.InDelta(t, 2.0*float64(ok+retried+dead), h.GetSampleSum(), 0.5*float64(ok+retried+dead))

	// The manual reader sees the same numbers, histograms included (they
	// reach it through the producer WithMetricReader hands it).
	rm := b.collect(t)
	require.Equal(t, int64(ok), sumCounter(t, rm, "plba.task.processed", with("succeeded")))
	require.Equal(t, uint64(ok), histCount(t, rm, "plba.task.duration", with("succeeded")))
	require.Equal(t, uint64(ok+retried+dead), histCount(t, rm, "plba.task.queue_wait", base))
}

func TestQueueAndPoolGauges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, b.tel.ObserveQueues(telemetry.QueueStatserFunc(func(context.Context) ([]queue.Stats, error) {
		return []queue.Stats{{Queue: "mail", Ready: 7, Delayed: 2, InFlight: 3, Dead: 1, DeadDiscarded: 5, FinishedKeysForgotten: 8}}, nil
	})))
	require.NoError(t, b.tel.ObservePools(telemetry.PoolStatserFunc(func() []telemetry.PoolStats {
		return []telemetry.PoolStats{{Queue: "mail", Size: 4, Busy: 3, CompletionFailed: 6,
			SettleFailed: map[string]int64{"ack": 2, "retry": 1}}}
	})))
	rm := b.collect(t)
	q := map[string]string{"queue": "mail"}
	require.Equal(t, int64(7), gaugeValue(t, rm, "plba.queue.depth", q))
	require.Equal(t, int64(3), gaugeValue(t, rm, "plba.queue.in_flight", q))
	require.Equal(t, int64(2), gaugeValue(t, rm, "plba.queue.delayed", q))
	require.Equal(t, int64(1), gaugeValue(t, rm, "plba.queue.dead", q))
	require.Equal(t, int64(4), gaugeValue(t, rm, "plba.pool.size", q))
	require.Equal(t, int64(3), gaugeValue(t, rm, "plba.pool.busy", q))
	require.Equal(t, int64(5), sumCounter(t, rm, "plba.queue.dead_discarded", q))
	require.Equal(t, int64(8), sumCounter(t, rm, "plba.queue.finished_keys_forgotten", q))
	require.Equal(t, int64(6), sumCounter(t, rm, "plba.task.completion_failed", q))
	require.Equal(t, int64(2), sumCounter(t, rm, "plba.task.settle_failed", map[string]string{"queue": "mail", "op": "ack"}))
	require.Equal(t, int64(1), sumCounter(t, rm, "plba.task.settle_failed", map[string]string{"queue": "mail", "op": "retry"}))

	require.NoError(t, b.tel.Shutdown(context.Background()))
	require.ErrorIs(t, b.tel.ObservePools(telemetry.PoolStatserFunc(func() []telemetry.PoolStats { return nil })), telemetry.ErrShutdown)
}

func TestRuntimeMetricsAreServed(t *testing.T) {
	t.Parallel()
	tel, err := telemetry.New(context.Background(), telemetry.Config{})
	require.NoError(t, err)
	defer func() { require.NoError(t, tel.Shutdown(context.Background())) }()
	mfs := scrape(t, tel.MetricsHandler())
	require.Contains(t, mfs, "go_goroutine_count")
	require.Contains(t, mfs, "target_info")
}

func TestTelemetryOffIsNop(t *testing.T) {
	t.Parallel()
	tel, err := telemetry.New(context.Background(), telemetry.Config{Metrics: telemetry.MetricsConfig{Enabled: telemetry.Bool(false)}})
	require.NoError(t, err)
	defer func() { require.NoError(t, tel.Shutdown(context.Background())) }()
	require.Equal(t, task.NopObserver{}, tel.Observer())
	require.Equal(t, telemetry.NopSourceObserver{}, tel.SourceObserver())
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusNotFound, rec.Code)
}

func TestExporterNoneStillPropagates(t *testing.T) {
	t.Parallel()
	tel, err := telemetry.New(context.Background(), telemetry.Config{Metrics: telemetry.MetricsConfig{Runtime: telemetry.Bool(false)}})
	require.NoError(t, err)
	defer func() { require.NoError(t, tel.Shutdown(context.Background())) }()
	obs := tel.Observer()
	tk := newTask("k", "q")
	obs.Enqueued(obs.Enqueuing(context.Background(), []*task.Task{tk}), []*task.Task{tk}, nil)
	require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-00$`, tk.Headers["traceparent"])
}

func TestOTLPExportersBuildAndShutDown(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{telemetry.ProtocolHTTP, telemetry.ProtocolGRPC} {
		cfg := telemetry.Config{}
		cfg.Traces.Exporter = telemetry.ExporterOTLP
		cfg.Traces.OTLP = telemetry.OTLPConfig{Protocol: proto, Endpoint: "127.0.0.1:1", Insecure: true,
			Headers: map[string]string{"api-key": "secret"}, Timeout: 200 * time.Millisecond}
		cfg.Metrics.Runtime = telemetry.Bool(false)
		cfg.Metrics.OTLP.Enabled = true
		cfg.Metrics.OTLP.OTLPConfig = telemetry.OTLPConfig{Protocol: proto, Endpoint: "http://127.0.0.1:1", Timeout: 200 * time.Millisecond}
		tel, err := telemetry.New(context.Background(), cfg)
		require.NoError(t, err, proto)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = tel.Shutdown(ctx) // nothing listens: export errors are expected, leaks are not
		cancel()
	}
}

func scrape(t testing.TB, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err, string(body))
	return mfs
}

func matches(labels []*dto.LabelPair, want map[string]string) bool {
	got := make(map[string]string, len(labels))
	for _, l := range labels {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	// Exact label set apart from the scope labels the exporter adds.
	for k := range got {
		if _, ok := want[k]; !ok && !strings.HasPrefix(k, "otel_scope") {
			return false
		}
	}
	return true
}

func promMetric(t testing.TB, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	mf, ok := mfs[name]
	require.True(t, ok, "metric %s missing", name)
	for _, m := range mf.GetMetric() {
		if matches(m.GetLabel(), labels) {
			return m
		}
	}
	require.Failf(t, "series missing", "%s%v", name, labels)
	return nil
}

func promValue(t testing.TB, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	return promMetric(t, mfs, name, labels).GetCounter().GetValue()
}

func promHist(t testing.TB, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Histogram {
	t.Helper()
	return promMetric(t, mfs, name, labels).GetHistogram()
}

func promHistCount(t testing.TB, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) uint64 {
	t.Helper()
	return promHist(t, mfs, name, labels).GetSampleCount()
}

func setMatches(set attribute.Set, want map[string]string) bool {
	if set.Len() != len(want) {
		return false
	}
	for k, v := range want {
		got, ok := set.Value(attribute.Key(k))
		if !ok || got.AsString() != v {
			return false
		}
	}
	return true
}

func findMetric(t testing.TB, rm metricdata.ResourceMetrics, name string) metricdata.Metrics {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m
			}
		}
	}
	require.Failf(t, "metric missing", "%s", name)
	return metricdata.Metrics{}
}

func sumCounter(t testing.TB, rm metricdata.ResourceMetrics, name string, labels map[string]string) int64 {
	t.Helper()
	sum, ok := findMetric(t, rm, name).Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is not an int64 sum", name)
	for _, dp := range sum.DataPoints {
		if setMatches(dp.Attributes, labels) {
			return dp.Value
		}
	}
	require.Failf(t, "series missing", "%s%v", name, labels)
	return 0
}

func histCount(t testing.TB, rm metricdata.ResourceMetrics, name string, labels map[string]string) uint64 {
	t.Helper()
	h, ok := findMetric(t, rm, name).Data.(metricdata.Histogram[float64])
	require.True(t, ok, "%s is not a float64 histogram", name)
	for _, dp := range h.DataPoints {
		if setMatches(dp.Attributes, labels) {
			return dp.Count
		}
	}
	require.Failf(t, "series missing", "%s%v", name, labels)
	return 0
}

func gaugeValue(t testing.TB, rm metricdata.ResourceMetrics, name string, labels map[string]string) int64 {
	t.Helper()
	g, ok := findMetric(t, rm, name).Data.(metricdata.Gauge[int64])
	require.True(t, ok, "%s is not an int64 gauge", name)
	for _, dp := range g.DataPoints {
		if setMatches(dp.Attributes, labels) {
			return dp.Value
		}
	}
	require.Failf(t, "series missing", "%s%v", name, labels)
	return 0
}

func newObservedLogger() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.InfoLevel)
	return zap.New(core), logs
}

// TestUnsampledDeliveryKeepsProducerIDs: with a parent-based sampler, a
// delivery of an unsampled task runs under the producer's span context
// (no span of its own would ever be recorded); its logs carry those ids.
func TestUnsampledDeliveryKeepsProducerIDs(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *telemetry.Config) {
		c.Traces.Sampler = telemetry.SamplerParentBasedRatio
		c.Traces.Ratio = 0
	})
	core, logs := newObservedLogger()
	tk := newTask("k", "q")
	b.obs.Enqueued(b.obs.Enqueuing(context.Background(), []*task.Task{tk}), []*task.Task{tk}, nil)
	tp := tk.Headers["traceparent"]
	require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-00$`, tp)
	var (
		sc       trace.SpanContext
		provider trace.TracerProvider
	)
	deliver(context.Background(), b.obs, tk, 1, task.Succeeded, nil, "", func(ctx context.Context) {
		sc = trace.SpanContextFromContext(ctx)
		provider = trace.SpanFromContext(ctx).TracerProvider()
		telemetry.Logger(ctx, core).Info("x")
	})
	require.Same(t, b.tel.TracerProvider(), provider, "the span's tracer provider is the host's")
	require.Equal(t, "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-00", tp)
	require.True(t, sc.IsRemote())
	f := logs.All()[0].ContextMap()
	require.Equal(t, sc.TraceID().String(), f[telemetry.FieldTraceID])
	require.Equal(t, sc.SpanID().String(), f[telemetry.FieldSpanID])
	require.Empty(t, b.ended(t))

	// Metrics are recorded all the same.
	rm := b.collect(t)
	require.Equal(t, int64(1), sumCounter(t, rm, "plba.task.processed", map[string]string{"queue": "q", "kind": "k", "outcome": "succeeded"}))
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	t.Parallel()
	def := telemetry.DefaultConfig()
	require.NoError(t, def.Validate())
	require.NoError(t, telemetry.Config{}.Validate(), "unset fields take their defaults")
	require.Equal(t, telemetry.ExporterNone, def.Traces.Exporter)
	require.Equal(t, telemetry.SamplerParentBasedAlways, def.Traces.Sampler)
	require.Equal(t, "plba", def.Resource.ServiceName)
	require.Empty(t, def.Resource.ServiceInstanceID, "filled per process by New")
	require.True(t, def.Metrics.PrometheusEnabled())
	require.True(t, def.Metrics.RuntimeEnabled())

	for _, c := range []struct {
		path   string
		mutate func(*telemetry.Config)
	}{
		{"traces.exporter", func(c *telemetry.Config) { c.Traces.Exporter = "jaeger" }},
		{"traces.sampler", func(c *telemetry.Config) { c.Traces.Sampler = "sometimes" }},
		{"traces.ratio", func(c *telemetry.Config) { c.Traces.Ratio = 1.5 }},
		{"traces.batch_timeout", func(c *telemetry.Config) { c.Traces.BatchTimeout = -time.Second }},
		{"traces.max_export_batch_size", func(c *telemetry.Config) { c.Traces.MaxQueueSize, c.Traces.MaxExportBatchSize = 10, 20 }},
		// The batch span processor makes a channel of that size: MaxInt64
		// panicked in makechan at start, 4e9 ran out of memory.
		{"traces.max_queue_size", func(c *telemetry.Config) {
			c.Traces.Exporter = telemetry.ExporterStdout
			c.Traces.MaxQueueSize = math.MaxInt64
		}},
		{"traces.otlp.protocol", func(c *telemetry.Config) {
			c.Traces.Exporter = telemetry.ExporterOTLP
			c.Traces.OTLP.Protocol = "udp"
		}},
		{"traces.otlp.endpoint", func(c *telemetry.Config) {
			c.Traces.Exporter = telemetry.ExporterOTLP
			c.Traces.OTLP.Endpoint = "ftp://collector:4318"
		}},
		{"metrics.otlp.interval", func(c *telemetry.Config) {
			c.Metrics.OTLP.Enabled = true
			c.Metrics.OTLP.Interval = -time.Second
		}},
		{"resource.attributes", func(c *telemetry.Config) { c.Resource.Attributes = map[string]string{" ": "x"} }},
	} {
		cfg := telemetry.DefaultConfig()
		c.mutate(&cfg)
		err := cfg.Validate()
		require.ErrorIs(t, err, telemetry.ErrInvalidConfig, c.path)
		require.Contains(t, err.Error(), c.path)
		_, err = telemetry.New(context.Background(), cfg)
		require.ErrorIs(t, err, telemetry.ErrInvalidConfig, "New validates too: %s", c.path)
	}
}

func TestResourceAttributes(t *testing.T) {
	t.Parallel()
	cfg := telemetry.Config{Resource: telemetry.ResourceConfig{
		ServiceName: "orders", ServiceVersion: "1.4.0", ServiceInstanceID: "host-a-1",
		Attributes: map[string]string{"deployment.environment.name": "test", "service.name": "ignored"},
	}}
	cfg.Metrics.Runtime = telemetry.Bool(false)
	cfg.Traces.Sampler = telemetry.SamplerAlways
	spans := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(context.Background(), cfg, telemetry.WithSyncSpanExporter(spans))
	require.NoError(t, err)
	defer func() { require.NoError(t, tel.Shutdown(context.Background())) }()
	_, s := tel.TracerProvider().Tracer("test").Start(context.Background(), "x")
	s.End()
	got := spans.GetSpans()
	require.Len(t, got, 1)
	res := map[string]string{}
	for _, kv := range got[0].Resource.Attributes() {
		res[string(kv.Key)] = kv.Value.Emit()
	}
	require.Equal(t, "orders", res["service.name"])
	require.Equal(t, "1.4.0", res["service.version"])
	require.Equal(t, "host-a-1", res["service.instance.id"])
	require.Equal(t, "test", res["deployment.environment.name"])

	// Left empty, it is this process's: <hostname>-<pid>.
	cfg.Resource.ServiceInstanceID = ""
	spans.Reset()
	tel2, err := telemetry.New(context.Background(), cfg, telemetry.WithSyncSpanExporter(spans))
	require.NoError(t, err)
	defer func() { require.NoError(t, tel2.Shutdown(context.Background())) }()
	_, s = tel2.TracerProvider().Tracer("test").Start(context.Background(), "x")
	s.End()
	got = spans.GetSpans()
	require.Len(t, got, 1)
	for _, kv := range got[0].Resource.Attributes() {
		res[string(kv.Key)] = kv.Value.Emit()
	}
	require.True(t, strings.HasSuffix(res["service.instance.id"], "-"+strconv.Itoa(os.Getpid())), res["service.instance.id"])
}

// TestOTLPHTTPExport sends spans and metrics to an OTLP/HTTP endpoint on
// loopback and checks the paths, the configured headers and plain HTTP
// (insecure for host:port, scheme for a URL).
func TestOTLPHTTPExport(t *testing.T) {
	t.Parallel()
	type hit struct{ path, key, ctype string }
	hits := make(chan hit, 16)
	metrics := make(chan *collectormetrics.ExportMetricsServiceRequest, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/metrics" {
			req := &collectormetrics.ExportMetricsServiceRequest{}
			if proto.Unmarshal(body, req) == nil {
				metrics <- req
			}
		}
		hits <- hit{path: r.URL.Path, key: r.Header.Get("Api-Key"), ctype: r.Header.Get("Content-Type")}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	hostport := strings.TrimPrefix(srv.URL, "http://")

	cfg := telemetry.Config{}
	cfg.Traces.Exporter = telemetry.ExporterOTLP
	cfg.Traces.Sampler = telemetry.SamplerAlways
	cfg.Traces.OTLP = telemetry.OTLPConfig{Protocol: telemetry.ProtocolHTTP, Endpoint: hostport, Insecure: true,
		Headers: map[string]string{"api-key": "s3cret"}}
	cfg.Metrics.Runtime = telemetry.Bool(false)
	cfg.Metrics.Prometheus = telemetry.Bool(false)
	cfg.Metrics.OTLP.Enabled = true
	cfg.Metrics.OTLP.Interval = time.Hour
	cfg.Metrics.OTLP.OTLPConfig = telemetry.OTLPConfig{Protocol: telemetry.ProtocolHTTP, Endpoint: srv.URL,
		Headers: map[string]string{"api-key": "m3trics"}}
	tel, err := telemetry.New(context.Background(), cfg)
	require.NoError(t, err)

	obs := tel.Observer()
	tk := newTask("k", "q")
	obs.Enqueued(obs.Enqueuing(context.Background(), []*task.Task{tk}), []*task.Task{tk}, nil)
	deliver(context.Background(), obs, tk, 1, task.Succeeded, nil, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, tel.ForceFlush(ctx))
	require.NoError(t, tel.Shutdown(ctx))

	// The exports (ForceFlush, then Shutdown: both cumulative) carry the
	// task counters and both histograms, which reach the OTLP reader
	// through the observer's metric producer.
	histCounts := map[string]uint64{}
	counters := map[string]bool{}
	for len(metrics) > 0 {
		for _, rm := range (<-metrics).GetResourceMetrics() {
			for _, sm := range rm.GetScopeMetrics() {
				for _, m := range sm.GetMetrics() {
					if h := m.GetHistogram(); h != nil {
						require.Equal(t, otlpmetrics.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE, h.GetAggregationTemporality())
						for _, dp := range h.GetDataPoints() {
							histCounts[m.GetName()] = max(histCounts[m.GetName()], dp.GetCount())
						}
					}
					if m.GetSum() != nil {
						counters[m.GetName()] = true
					}
				}
			}
		}
	}
	require.Equal(t, map[string]uint64{"plba.task.duration": 1, "plba.task.queue_wait": 1}, histCounts)
	require.True(t, counters["plba.task.enqueued"] && counters["plba.task.processed"], "counters: %v", counters)

	got := map[string]hit{}
	for len(hits) > 0 {
		h := <-hits
		got[h.path] = h
	}
	require.Contains(t, got, "/v1/traces")
	require.Equal(t, "s3cret", got["/v1/traces"].key)
	require.Equal(t, "application/x-protobuf", got["/v1/traces"].ctype)
	require.Contains(t, got, "/v1/metrics")
	require.Equal(t, "m3trics", got["/v1/metrics"].key)
}

func TestOTLPHTTPEndpointWithPathIsKept(t *testing.T) {
	t.Parallel()
	paths := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		paths <- r.URL.Path
	}))
	defer srv.Close()
	cfg := telemetry.Config{}
	cfg.Traces.Exporter = telemetry.ExporterOTLP
	cfg.Traces.Sampler = telemetry.SamplerAlways
	cfg.Traces.OTLP = telemetry.OTLPConfig{Endpoint: srv.URL + "/gateway/spans"}
	cfg.Metrics.Enabled = telemetry.Bool(false)
	tel, err := telemetry.New(context.Background(), cfg)
	require.NoError(t, err)
	_, s := tel.TracerProvider().Tracer("test").Start(context.Background(), "x")
	s.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, tel.Shutdown(ctx))
	require.Equal(t, "/gateway/spans", <-paths)
}

// TestRatioSamplerDecidesOnce: for a new trace the observer asks the
// sampler before starting the producer span, and the provider takes the
// ids it asked with, so a ratio sampler's decision is the one the span
// and the propagated flag show: every task whose traceparent says
// sampled has exactly its exported producer span, the others none.
func TestRatioSamplerDecidesOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *telemetry.Config) {
		c.Traces.Sampler = telemetry.SamplerParentBasedRatio
		c.Traces.Ratio = 0.5
	})
	const n = 400
	tasks := make([]*task.Task, n)
	for i := range tasks {
		tasks[i] = newTask("k", "q")
	}
	b.obs.Enqueued(b.obs.Enqueuing(context.Background(), tasks), tasks, nil)
	producers := map[string]bool{}
	for _, s := range byName(t, b.ended(t), "q publish") {
		producers["00-"+s.SpanContext.TraceID().String()+"-"+s.SpanContext.SpanID().String()+"-01"] = true
	}
	sampled := 0
	for _, tk := range tasks {
		tp := tk.Headers["traceparent"]
		if strings.HasSuffix(tp, "-01") {
			sampled++
			require.True(t, producers[tp], "sampled task %s has no producer span", tp)
		} else {
			require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-00$`, tp)
		}
	}
	require.Equal(t, len(producers), sampled)
	require.Greater(t, sampled, n/4)
	require.Less(t, sampled, 3*n/4)
}

// TestEnqueueUnderUnsampledSpanPropagatesIt: with a parent-based sampler,
// tasks enqueued under an unsampled span carry that span's context (a
// producer span of their own could never be recorded), tracestate and
// baggage included, and the handler's context continues it.
func TestEnqueueUnderUnsampledSpanPropagatesIt(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *telemetry.Config) {
		c.Traces.Sampler = telemetry.SamplerParentBasedRatio
		c.Traces.Ratio = 0
	})
	ts, err := trace.ParseTraceState("vendor=v1")
	require.NoError(t, err)
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceState: ts,
	})
	member, err := baggage.NewMember("tenant", "acme")
	require.NoError(t, err)
	bag, err := baggage.New(member)
	require.NoError(t, err)
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), parent), bag)
	tasks := []*task.Task{newTask("k", "q"), newTask("k", "q")}
	b.obs.Enqueued(b.obs.Enqueuing(ctx, tasks), tasks, nil)
	for _, tk := range tasks {
		require.Equal(t, "00-"+parent.TraceID().String()+"-"+parent.SpanID().String()+"-00", tk.Headers["traceparent"])
		require.Equal(t, "vendor=v1", tk.Headers["tracestate"])
		require.Equal(t, "tenant=acme", tk.Headers["baggage"])
	}
	var sc trace.SpanContext
	var tenant string
	deliver(context.Background(), b.obs, tasks[0], 1, task.Succeeded, nil, "", func(ctx context.Context) {
		sc = trace.SpanContextFromContext(ctx)
		tenant = baggage.FromContext(ctx).Member("tenant").Value()
	})
	require.Equal(t, parent.TraceID(), sc.TraceID())
	require.Equal(t, parent.SpanID(), sc.SpanID())
	require.Equal(t, "vendor=v1", sc.TraceState().String())
	require.Equal(t, "acme", tenant)
	require.Empty(t, b.ended(t))
}

// TestUnsampledTaskAllocations guards the 0% sampling path: one task from
// Enqueuing to Finished, on a fresh task as the runtime sees it, makes at
// most 4 allocations (the traceparent string, the header map and its
// group, the delivery). The goal is under 5 extra per task.
func TestUnsampledTaskAllocations(t *testing.T) {
	b := setup(t, func(c *telemetry.Config) {
		c.Traces.Sampler = telemetry.SamplerParentBasedRatio
		c.Traces.Ratio = 0
	})
	const runs = 200
	tasks := make([]*task.Task, runs+1) // AllocsPerRun runs once more to warm up
	for i := range tasks {
		tasks[i] = newTask("alloc.test", task.DefaultQueue)
	}
	ctx := context.Background()
	i := 0
	allocs := testing.AllocsPerRun(runs, func() {
		tk := tasks[i]
		i++
		batch := tasks[i-1 : i]
		ectx := b.obs.Enqueuing(ctx, batch)
		b.obs.Enqueued(ectx, batch, nil)
		tk.Attempt = 1
		hctx := b.obs.Starting(ctx, tk)
		b.obs.Finished(hctx, tk, task.Succeeded, nil, "", time.Millisecond)
	})
	t.Logf("allocs per task: %v", allocs)
	require.LessOrEqual(t, allocs, 4.0)
	require.NotEmpty(t, tasks[0].Header("traceparent"), "the unsampled path still propagates")
}

// TestDroppedBatchSharesOneContext: with the host's default (no exporter,
// so every new trace is dropped) the tasks of one Enqueuing call carry one
// trace context, the batch's publish operation's: one traceparent, a
// header map of its own for every task (a write to one task's headers
// stays on it), the same context in every handler; the
// next call starts another trace. Batches of unsampled ratio traces keep
// a trace per task (TestRatioSamplerDecidesOnce).
func TestDroppedBatchSharesOneContext(t *testing.T) {
	t.Parallel()
	tel, err := telemetry.New(context.Background(), telemetry.Config{Metrics: telemetry.MetricsConfig{Runtime: telemetry.Bool(false)}})
	require.NoError(t, err)
	defer func() { require.NoError(t, tel.Shutdown(context.Background())) }()
	obs := tel.Observer()

	own := newTask("k", "q")
	own.SetHeader(task.HeaderParent, "p1")
	tasks := []*task.Task{newTask("k", "q"), newTask("k2", "q"), own, newTask("k", "q2")}
	obs.Enqueued(obs.Enqueuing(context.Background(), tasks), tasks, nil)
	tp := tasks[0].Headers["traceparent"]
	require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-00$`, tp)
	for _, tk := range tasks {
		require.Equal(t, tp, tk.Header("traceparent"), "task %s", tk.Kind)
	}
	require.Equal(t, map[string]string{"traceparent": tp, task.HeaderParent: "p1"}, own.Headers)

	tasks[0].SetHeader(task.HeaderFinished, "succeeded")
	require.Empty(t, tasks[1].Header(task.HeaderFinished), "each task's map is its own")
	tasks[2].Headers["x"] = "direct" // a direct write, as a handler may do
	for _, tk := range []*task.Task{tasks[0], tasks[1], tasks[3]} {
		require.Empty(t, tk.Header("x"), "a direct write to one task's map reaches no other")
	}
	require.Equal(t, map[string]string{"traceparent": tp}, tasks[3].Headers)

	for _, tk := range tasks {
		var sc trace.SpanContext
		deliver(context.Background(), obs, tk, 1, task.Succeeded, nil, "", func(ctx context.Context) {
			sc = trace.SpanContextFromContext(ctx)
		})
		require.Equal(t, "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-00", tp)
	}

	next := []*task.Task{newTask("k", "q")}
	obs.Enqueued(obs.Enqueuing(context.Background(), next), next, nil)
	require.NotEqual(t, tp[3:35], next[0].Header("traceparent")[3:35], "a new call, a new trace")
}

// TestDroppedBatchAllocations guards the cost per task of a batch at the
// host's default telemetry: the trace context is made once per Enqueuing
// call, so a task of a batch of 100 costs its own header map (two
// allocations: a small map) and its delivery.
func TestDroppedBatchAllocations(t *testing.T) {
	tel, err := telemetry.New(context.Background(), telemetry.Config{Metrics: telemetry.MetricsConfig{Runtime: telemetry.Bool(false)}})
	require.NoError(t, err)
	defer func() { require.NoError(t, tel.Shutdown(context.Background())) }()
	obs := tel.Observer()
	const batch, runs = 100, 20
	batches := make([][]*task.Task, runs+1) // AllocsPerRun runs once more to warm up
	for i := range batches {
		batches[i] = make([]*task.Task, batch)
		for j := range batches[i] {
			batches[i][j] = newTask("alloc.test", task.DefaultQueue)
		}
	}
	ctx := context.Background()
	i := 0
	allocs := testing.AllocsPerRun(runs, func() {
		tasks := batches[i]
		i++
		obs.Enqueued(obs.Enqueuing(ctx, tasks), tasks, nil)
		for _, tk := range tasks {
			tk.Attempt = 1
			obs.Finished(obs.Starting(ctx, tk), tk, task.Succeeded, nil, "", time.Millisecond)
		}
	})
	t.Logf("allocs per task: %v", allocs/batch)
	require.LessOrEqual(t, allocs/batch, 3.1)
	require.NotEmpty(t, batches[0][0].Header("traceparent"))
}

// TestUnsampledDeliveryKeepsItsProducer: an unsampled delivery's span
// context (and its log fields) stay the producer's for the whole handler,
// even when the task's traceparent header changes meanwhile (the handler
// enqueues its own task again, whose header map the deliveries share).
func TestUnsampledDeliveryKeepsItsProducer(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *telemetry.Config) { c.Traces.Sampler = telemetry.SamplerNever })
	tasks := []*task.Task{newTask("k", "q")}
	b.obs.Enqueued(b.obs.Enqueuing(context.Background(), tasks), tasks, nil)
	producer := tasks[0].Headers["traceparent"]
	require.NotEmpty(t, producer)
	var before, after trace.SpanContext
	var fields telemetry.DeliveryFields
	deliver(context.Background(), b.obs, tasks[0], 1, task.Succeeded, nil, "", func(ctx context.Context) {
		before = trace.SpanContextFromContext(ctx)
		b.obs.Enqueued(b.obs.Enqueuing(context.Background(), tasks), tasks, nil) // a new traceparent
		require.NotEqual(t, producer, tasks[0].Headers["traceparent"])
		after = trace.SpanContextFromContext(ctx)
		fields, _ = telemetry.FieldsFromContext(ctx)
	})
	require.True(t, before.IsValid())
	require.True(t, before.Equal(after), "span context %v became %v", before, after)
	require.Equal(t, "00-"+before.TraceID().String()+"-"+before.SpanID().String()+"-00", producer)
	require.Equal(t, before.TraceID(), fields.TraceID)
	require.Equal(t, before.SpanID(), fields.SpanID)
}

// TestQueueGaugesAreBoundedOverQueues: the queue gauges name at most
// telemetry.MaxQueueSeries queues (the first seen); the counts of the
// others are reported together as queue="_other". Queue names are the
// producers' (the backend lists every queue enqueued to), and a producer
// taking them from outside input made six series per name on every
// scrape, where the task counters' label sets were bounded.
func TestQueueGaugesAreBoundedOverQueues(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const extra = 40
	stats := make([]queue.Stats, 0, telemetry.MaxQueueSeries+extra)
	for i := range telemetry.MaxQueueSeries + extra {
		stats = append(stats, queue.Stats{Queue: fmt.Sprintf("q%04d", i), Ready: 1, Dead: 2, DeadDiscarded: 3, FinishedKeysForgotten: 4})
	}
	require.NoError(t, b.tel.ObserveQueues(telemetry.QueueStatserFunc(func(context.Context) ([]queue.Stats, error) {
		return stats, nil
	})))
	rm := b.collect(t)
	depth, ok := findMetric(t, rm, "plba.queue.depth").Data.(metricdata.Gauge[int64])
	require.True(t, ok)
	require.Equal(t, telemetry.MaxQueueSeries+1, len(depth.DataPoints), "series of plba.queue.depth")
	first := map[string]string{"queue": "q0000"}
	require.Equal(t, int64(1), gaugeValue(t, rm, "plba.queue.depth", first))
	other := map[string]string{"queue": "_other"}
	require.Equal(t, int64(extra), gaugeValue(t, rm, "plba.queue.depth", other))
	require.Equal(t, int64(2*extra), gaugeValue(t, rm, "plba.queue.dead", other))
	require.Equal(t, int64(3*extra), sumCounter(t, rm, "plba.queue.dead_discarded", other))
	require.Equal(t, int64(4*extra), sumCounter(t, rm, "plba.queue.finished_keys_forgotten", other))

	// The queues named first stay named (their series go on), whatever
	// the order of a later listing.
	slices.Reverse(stats)
	rm = b.collect(t)
	require.Equal(t, int64(1), gaugeValue(t, rm, "plba.queue.depth", first))
	require.Equal(t, int64(extra), gaugeValue(t, rm, "plba.queue.depth", other))
}
