package telemetry_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/telemetry"
)

// keptExports is a metric exporter that keeps the value of every int64
// sum data point of every export, by metric name and queue.
type keptExports struct {
	mu   sync.Mutex
	sums map[string]int64 // "name queue" -> last value exported
}

func (e *keptExports) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}

func (e *keptExports) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}

func (e *keptExports) Export(_ context.Context, rm *metricdata.ResourceMetrics) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				q, _ := dp.Attributes.Value("queue")
				e.sums[m.Name+" "+q.AsString()] = dp.Value
			}
		}
	}
	return nil
}

func (e *keptExports) ForceFlush(context.Context) error { return nil }
func (e *keptExports) Shutdown(context.Context) error   { return nil }

func (e *keptExports) get(name, queue string) (int64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.sums[name+" "+queue]
	return v, ok
}

// TestShutdownExportsTheLastCounts: Shutdown's last push (the periodic
// reader's, as OTLP's) carries the counts the backend and the pools
// report through their callbacks, as they are at the stop: the settlements
// that failed during the drain, the dead letters discarded since the last
// push. The callbacks were unregistered before the meter provider's
// shutdown, so its last push had none of them and what happened since
// the previous push (up to an interval, 30 s by default) was never sent.
func TestShutdownExportsTheLastCounts(t *testing.T) {
	t.Parallel()
	exp := &keptExports{sums: map[string]int64{}}
	cfg := telemetry.Config{}
	cfg.Metrics.Runtime = telemetry.Bool(false)
	cfg.Metrics.Prometheus = telemetry.Bool(false)
	tel, err := telemetry.New(context.Background(), cfg, telemetry.WithSpanExporter(tracetest.NewInMemoryExporter()), telemetry.WithMetricReader(func(p sdkmetric.Producer) sdkmetric.Reader {
		return sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour), sdkmetric.WithProducer(p))
	}))
	require.NoError(t, err)
	require.NoError(t, tel.ObserveQueues(telemetry.QueueStatserFunc(func(context.Context) ([]queue.Stats, error) {
		return []queue.Stats{{Queue: "mail", DeadDiscarded: 5, FinishedKeysForgotten: 8}}, nil
	})))
	require.NoError(t, tel.ObservePools(telemetry.PoolStatserFunc(func() []telemetry.PoolStats {
		return []telemetry.PoolStats{{Queue: "mail", Size: 4, CompletionFailed: 6, SettleFailed: map[string]int64{"ack": 2}}}
	})))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, tel.Shutdown(ctx))

	for name, want := range map[string]int64{
		"plba.queue.dead_discarded":          5,
		"plba.queue.finished_keys_forgotten": 8,
		"plba.task.completion_failed":        6,
		"plba.task.settle_failed":            2,
		"plba.telemetry.spans_dropped":       0, // no queue
	} {
		q := "mail"
		if name == "plba.telemetry.spans_dropped" {
			q = ""
		}
		got, ok := exp.get(name, q)
		require.True(t, ok, "%s{queue=%s} is not in the last push", name, q)
		require.Equal(t, want, got, name)
	}
}
