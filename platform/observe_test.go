package platform_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/platform"
	plog "github.com/plba/plba/platform/log"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/telemetry"
	"github.com/plba/plba/platform/worker"
)

// In the host, a polling source's poll is a span whose children are the
// producer spans of the tasks it emits (and so their consumer spans), its
// log lines carry the source name and the poll's trace, and its emits are
// counted on /metrics.
func TestSourcePollsAreTracedInTheHost(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	core, logs := observer.New(zapcore.InfoLevel)
	base := zap.New(core)
	var polls atomic.Int32
	handled := make(chan struct{}, 16)
	var once sync.Once
	done := make(chan struct{})

	app := fxtest.New(t,
		platform.Module(load(t, "telemetry.traces.exporter=none", "telemetry.traces.sampler=always"), platform.Info{}),
		telemetry.WithOptions(telemetry.WithSyncSpanExporter(spans)),
		worker.SupplyRoute(task.Route{Kind: "tick", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			handled <- struct{}{}
			return nil
		})}),
		fx.Provide(source.AsSource(func() *source.Poller {
			return source.Poll("ticker", 20*time.Millisecond, 0, func(ctx context.Context, emit source.Emitter) error {
				if polls.Add(1) > 3 {
					once.Do(func() { close(done) })
					return nil
				}
				plog.FromContext(ctx, base).Info("polling")
				return emit.Emit(ctx, &task.Task{Kind: "tick"})
			})
		})),
	)
	app.RequireStart()
	<-done
	for range 3 {
		<-handled
	}
	// Read the spans before stopping: the in-memory exporter forgets them
	// when the tracer provider shuts it down.
	require.Eventually(t, func() bool {
		n := 0
		for _, s := range spans.GetSpans() {
			if s.SpanKind == trace.SpanKindConsumer {
				n++
			}
		}
		return n >= 3
	}, 10*time.Second, 5*time.Millisecond)
	got := spans.GetSpans()
	app.RequireStop()

	byID := map[trace.SpanID]tracetest.SpanStub{}
	var pollSpans []tracetest.SpanStub
	for _, s := range got {
		byID[s.SpanContext.SpanID()] = s
		if s.Name == "ticker poll" {
			pollSpans = append(pollSpans, s)
		}
	}
	require.GreaterOrEqual(t, len(pollSpans), 3)
	producers := 0
	for _, s := range got {
		if s.SpanKind != trace.SpanKindProducer {
			continue
		}
		producers++
		parent, ok := byID[s.Parent.SpanID()]
		require.True(t, ok, "producer span %q has a recorded parent", s.Name)
		require.Equal(t, "ticker poll", parent.Name, "the poll is the parent of the tasks it emits")
	}
	require.Equal(t, 3, producers)

	lines := logs.FilterMessage("polling").All()
	require.Len(t, lines, 3)
	for _, l := range lines {
		f := l.ContextMap()
		require.Equal(t, "ticker", f["source"])
		require.NotEmpty(t, f["trace_id"])
		require.True(t, strings.Trim(f["trace_id"].(string), "0") != "", "a real trace id")
	}
}
