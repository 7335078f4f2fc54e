package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/plba/plba/platform/queue/queuetest"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/telemetry"
)

// newMetered returns telemetry's observer and a manual reader of its
// metrics, shut down when the test ends.
func newMetered(t *testing.T) (task.Observer, *sdkmetric.ManualReader) {
	t.Helper()
	var reader *sdkmetric.ManualReader
	cfg := telemetry.Config{}
	cfg.Metrics.Runtime = telemetry.Bool(false)
	tel, err := telemetry.New(context.Background(), cfg, telemetry.WithMetricReader(func(p sdkmetric.Producer) sdkmetric.Reader {
		reader = sdkmetric.NewManualReader(sdkmetric.WithProducer(p))
		return reader
	}))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	return tel.Observer(), reader
}

// taskCounts reads the int64 sum name by the outcome label.
func taskCounts(t *testing.T, r *sdkmetric.ManualReader, name string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				o, _ := dp.Attributes.Value(attribute.Key("outcome"))
				out[o.AsString()] += dp.Value
			}
		}
	}
	return out
}

// TestRefusedAckIsNoFailedHandler: a delivery whose handler succeeded and
// whose ack the backend refused is on plba.task.processed as returned,
// and not on plba.task.failed, which counts deliveries whose handler
// failed (docs/metrics.md): the observer got the ack's error and counted
// it there as a failed handler run.
func TestRefusedAckIsNoFailedHandler(t *testing.T) {
	t.Parallel()
	for name, refuse := range refusals {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			obs, reader := newMetered(t)
			be := queuetest.NewFaulty(newMemory(t))
			be.Inject(queuetest.OpAck, refuse("connection reset", 1))
			var runs atomic.Int64
			route := orderRoute
			route.Handler = task.HandlerFunc(func(context.Context, *task.Task) error { runs.Add(1); return nil })
			cfg := fast
			cfg.Lease = shortLease
			rt := startInbox(t, be, cfg, &inbox{emit: []string{"o1"}}, route, obs)
			p, _ := rt.Pool("orders")
			require.Eventually(t, func() bool { return p.Stats().Processed == 2 }, 10*time.Second, time.Millisecond)
			require.Equal(t, int64(2), runs.Load())
			require.Equal(t, map[string]int64{"succeeded": 1, "returned": 1}, taskCounts(t, reader, "plba.task.processed"))
			require.Empty(t, taskCounts(t, reader, "plba.task.failed"), "no handler failed")
		})
	}
}
