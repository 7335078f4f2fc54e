package telemetry_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/plba/plba/internal/workerbench"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/telemetry"
	"github.com/plba/plba/platform/worker"
)

// benchTelemetry builds Telemetry as a host would run it: metrics with the
// Prometheus exporter (no runtime metrics, which cost nothing per task),
// spans through the batch span processor to an exporter that discards
// them, sampled at ratio (0 or 1) for new traces.
func benchTelemetry(b *testing.B, ratio float64) *telemetry.Telemetry {
	b.Helper()
	cfg := telemetry.Config{}
	cfg.Traces.Sampler = telemetry.SamplerParentBasedRatio
	cfg.Traces.Ratio = ratio
	cfg.Metrics.Runtime = telemetry.Bool(false)
	tel, err := telemetry.New(context.Background(), cfg, telemetry.WithSpanExporter(tracetest.NewNoopExporter()))
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, tel.Shutdown(context.Background())) })
	return tel
}

// runRuntime drives b.N no-op tasks through the real worker runtime on the
// memory backend (one pool, concurrency 8), with obs observing: the
// benchmark goroutine enqueues them in batches of 64 through the
// runtime's producer, the pool handles them. One op is one task.
func runRuntime(b *testing.B, obs task.Observer) {
	b.Helper()
	const batch = 64
	be := memory.New(memory.Options{})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(b, be.Close(ctx))
	}()
	var handled atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	route := task.Route{Kind: "bench.noop", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
		if handled.Add(1) == n {
			close(done)
		}
		return nil
	})}
	rt, err := worker.New(worker.Params{
		Routes: []task.Route{route}, Backend: be, Observer: obs,
		Config: worker.Config{task.DefaultQueue: worker.PoolConfig{Concurrency: 8}},
	})
	require.NoError(b, err)
	ctx := context.Background()
	require.NoError(b, rt.Start(ctx))
	buf := make([]*task.Task, 0, batch)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := workerbench.CPUTime()
	for sent := 0; sent < b.N; {
		buf = buf[:0]
		for i := 0; i < batch && sent+i < b.N; i++ {
			buf = append(buf, &task.Task{Kind: "bench.noop"})
		}
		if err := rt.Producer().Enqueue(ctx, buf...); err != nil {
			b.Fatal(err)
		}
		sent += len(buf)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		b.Fatalf("only %d of %d tasks handled", handled.Load(), b.N)
	}
	b.StopTimer()
	reportCPU(b, cpu0)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(b, rt.Stop(sctx))
}

// BenchmarkTelemetryOverhead is the per-task cost of telemetry in the real
// runtime: off (task.NopObserver), sampling 0% (trace context created and
// propagated, metrics recorded, nothing exported) and 100% (every producer
// and consumer span exported through the batch processor).
func BenchmarkTelemetryOverhead(b *testing.B) {
	b.Run("off", func(b *testing.B) { runRuntime(b, nil) })
	b.Run("sample=0", func(b *testing.B) { runRuntime(b, benchTelemetry(b, 0).Observer()) })
	b.Run("sample=1", func(b *testing.B) { runRuntime(b, benchTelemetry(b, 1).Observer()) })
}

// BenchmarkObserver is the observer alone, without the runtime's noise:
// one op is Enqueuing+Enqueued+Starting+Finished of one task.
func BenchmarkObserver(b *testing.B) {
	for _, c := range []struct {
		name  string
		ratio float64
	}{{"sample=0", 0}, {"sample=1", 1}} {
		b.Run(c.name, func(b *testing.B) {
			obs := benchTelemetry(b, c.ratio).Observer()
			tk := &task.Task{Kind: "bench.noop", Queue: task.DefaultQueue}
			tk.Prepare(time.Now())
			tasks := []*task.Task{tk}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := workerbench.CPUTime()
			for range b.N {
				ectx := obs.Enqueuing(ctx, tasks)
				obs.Enqueued(ectx, tasks, nil)
				tk.Attempt = 1
				hctx := obs.Starting(ctx, tk)
				obs.Finished(hctx, tk, task.Succeeded, nil, "", time.Microsecond)
			}
			b.StopTimer()
			reportCPU(b, cpu0)
		})
	}
}

// BenchmarkReference measures the yardsticks the overhead is judged
// against on the same machine in the same run: a bare OpenTelemetry span
// through the batch span processor, the same span with the eight
// attributes of a consumer span, and a counter add with its attribute set
// built per call.
func BenchmarkReference(b *testing.B) {
	b.Run("span-batch", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		defer func() { require.NoError(b, tp.Shutdown(context.Background())) }()
		tr := tp.Tracer("bench")
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := workerbench.CPUTime()
		for range b.N {
			_, s := tr.Start(ctx, "op")
			s.End()
		}
		b.StopTimer()
		reportCPU(b, cpu0)
	})
	b.Run("span-batch-8attrs", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		defer func() { require.NoError(b, tp.Shutdown(context.Background())) }()
		tr := tp.Tracer("bench")
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := workerbench.CPUTime()
		for i := range b.N {
			_, s := tr.Start(ctx, "op")
			s.SetAttributes(attribute.String("messaging.system", "plba"), attribute.String("messaging.destination.name", "default"),
				attribute.String("messaging.message.id", "0123456789abcdef"), attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.operation.name", "process"), attribute.String("plba.task.kind", "bench.noop"),
				attribute.Int("plba.task.attempt", i), attribute.String("plba.task.outcome", "succeeded"))
			s.End()
		}
		b.StopTimer()
		reportCPU(b, cpu0)
	})
	b.Run("counter-add-attrs", func(b *testing.B) {
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		defer func() { require.NoError(b, mp.Shutdown(context.Background())) }()
		c, err := mp.Meter("bench").Int64Counter("ops")
		require.NoError(b, err)
		ctx := context.Background()
		queue, kind := "default", "bench.noop"
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := workerbench.CPUTime()
		for range b.N {
			c.Add(ctx, 1, metric.WithAttributes(attribute.String("queue", queue), attribute.String("kind", kind), attribute.String("outcome", "succeeded")))
		}
		b.StopTimer()
		reportCPU(b, cpu0)
	})
}

// reportCPU reports the process CPU time since cpu0 per op (all
// goroutines: workers, the batch span processor, the GC).
func reportCPU(b *testing.B, cpu0 time.Duration) {
	if cpu := workerbench.CPUTime() - cpu0; cpu > 0 && cpu0 > 0 {
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	}
}
