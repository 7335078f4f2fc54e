package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/plba/plba/platform/lease"
)

// TestKVHandOverIsCountedAsDocumented: a hand-over is counted on
// plba.lease.handovers with the unit and attribute docs/metrics.md gives
// ({handover}, lease). The counter had no unit.
func TestKVHandOverIsCountedAsDocumented(t *testing.T) {
	url := natsURL(t)
	bucket := uniqueBucket(t)
	const ttl = 3 * time.Second
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })

	a := newHost(t, url, bucket, "host-a", ttl).kv.Lease("source/mailbox")
	nc, err := nats.Connect(url, nats.Name("host-b"), nats.MaxReconnects(0))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kvB, err := lease.OpenKV(context.Background(), js, lease.KVConfig{Bucket: bucket, TTL: ttl, Holder: "host-b",
		Meter: mp.Meter("test")})
	require.NoError(t, err)
	b := kvB.Lease("source/mailbox")

	ha := acquire(t, a, ttl+10*time.Second)
	got := make(chan lease.Hold, 1)
	go func() {
		if h, err := b.Acquire(context.Background()); err == nil {
			got <- h
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for b.Status().Holder != "host-a" {
		require.True(t, time.Now().Before(deadline), "B never saw A hold the lease")
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, ha.Release(context.Background()))
	var hb lease.Hold
	select {
	case hb = <-got:
	case <-time.After(2 * ttl):
		t.Fatal("B did not take the released lease")
	}
	defer func() { _ = hb.Release(context.Background()) }()

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	require.Len(t, rm.ScopeMetrics, 1)
	require.Len(t, rm.ScopeMetrics[0].Metrics, 1)
	m := rm.ScopeMetrics[0].Metrics[0]
	require.Equal(t, "plba.lease.handovers", m.Name)
	require.Equal(t, "{handover}", m.Unit)
	sum := m.Data.(metricdata.Sum[int64])
	require.True(t, sum.IsMonotonic)
	require.Len(t, sum.DataPoints, 1)
	require.Equal(t, int64(1), sum.DataPoints[0].Value)
	require.Equal(t, attribute.NewSet(attribute.String("lease", "source/mailbox")), sum.DataPoints[0].Attributes)
}
