package jetstream

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// The backend's own instruments are plba.queue.claims_lost only: the
// dead letters it discarded are in Stats.DeadDiscarded, which telemetry
// exports per queue as plba.queue.dead_discarded. A second instrument of
// that name, without queue and with another description, was exported
// beside telemetry's (one Prometheus name, two meanings).
func TestBackendInstrumentsAreNotTelemetrys(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	b := &Backend{}
	b.claimsLost.Add(3)
	b.deadDiscarded.Add(2)
	require.NoError(t, b.registerMetricsOn(mp.Meter(MeterName)))
	t.Cleanup(func() { _ = b.metricReg.Unregister() })

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			require.True(t, ok, "%s is a counter", m.Name)
			for _, dp := range sum.DataPoints {
				got[m.Name] += dp.Value
			}
		}
	}
	require.Equal(t, map[string]int64{"plba.queue.claims_lost": 3}, got)
}
