package telemetry

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestHistogramMatchesSDK: the observer's own histogram gives the data
// point the SDK's explicit-bucket histogram gives for the same values
// and bounds, bound values included (buckets are upper-inclusive).
func TestHistogramMatchesSDK(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { require.NoError(t, mp.Shutdown(context.Background())) })
	sdkHist, err := mp.Meter("test").Float64Histogram("h", metric.WithExplicitBucketBoundaries(durationBuckets[:]...))
	require.NoError(t, err)

	values := []time.Duration{0, time.Nanosecond, 999 * time.Microsecond, time.Millisecond, time.Millisecond + 1,
		7 * time.Millisecond, time.Second, 300 * time.Second, 300*time.Second + 1, time.Hour}
	for _, b := range durationBounds {
		values = append(values, b-1, b, b+1)
	}
	for range 1000 {
		values = append(values, time.Duration(rand.Int64N(int64(400*time.Second))))
	}
	var h histogram
	for _, v := range values {
		h.record(v)
		sdkHist.Record(context.Background(), v.Seconds())
	}
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	want := rm.ScopeMetrics[0].Metrics[0].Data.(metricdata.Histogram[float64]).DataPoints[0]

	got, ok := h.dataPoint()
	require.True(t, ok)
	require.Equal(t, want.Bounds, got.Bounds)
	require.Equal(t, want.BucketCounts, got.BucketCounts)
	require.Equal(t, want.Count, got.Count)
	require.InDelta(t, want.Sum, got.Sum, 1e-6)
	wantMin, _ := want.Min.Value()
	gotMin, _ := got.Min.Value()
	wantMax, _ := want.Max.Value()
	gotMax, _ := got.Max.Value()
	require.Equal(t, wantMin, gotMin)
	require.Equal(t, wantMax, gotMax)
}

func TestHistogramEmptyAndNegative(t *testing.T) {
	var h histogram
	_, ok := h.dataPoint()
	require.False(t, ok, "an empty histogram has no data point")
	h.record(-time.Second)
	dp, ok := h.dataPoint()
	require.True(t, ok)
	require.Equal(t, uint64(1), dp.Count)
	require.Equal(t, uint64(1), dp.BucketCounts[0], "a negative duration counts as 0")
	mn, _ := dp.Min.Value()
	require.Zero(t, mn)
}

// TestHistogramConcurrent: concurrent records lose nothing (run with
// -race).
func TestHistogramConcurrent(t *testing.T) {
	var h histogram
	const goroutines, each = 8, 5000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				h.record(time.Duration(g*each+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	dp, ok := h.dataPoint()
	require.True(t, ok)
	require.Equal(t, uint64(goroutines*each), dp.Count)
	var n uint64
	for _, c := range dp.BucketCounts {
		n += c
	}
	require.Equal(t, dp.Count, n)
	mn, _ := dp.Min.Value()
	mx, _ := dp.Max.Value()
	require.Zero(t, mn)
	require.Equal(t, (time.Duration(goroutines*each-1) * time.Microsecond).Seconds(), mx)
	require.InDelta(t, (time.Duration(goroutines*each*(goroutines*each-1)/2) * time.Microsecond).Seconds(), dp.Sum, 1e-6)
}

// TestHistProducer: the producer reports one data point per label set
// that recorded, under the metric of the histogram, with the set's
// attributes and cumulative temporality; aliases of the "_other" set are
// not reported twice.
func TestHistProducer(t *testing.T) {
	var c labelCache
	p := newHistProducer()
	got, err := p.Produce(context.Background())
	require.NoError(t, err)
	require.Empty(t, got, "no cache yet")
	p.labels.Store(&c)

	c.get("q", "a", "").wait.record(time.Millisecond)
	c.get("q", "a", "succeeded").duration.record(2 * time.Millisecond)
	c.get("q", "a", "succeeded").duration.record(3 * time.Millisecond)
	c.get("q", "b", "retried").duration.record(time.Second)
	c.get("q", "b", "ok") // no histogram records: no data point

	sms, err := p.Produce(context.Background())
	require.NoError(t, err)
	require.Len(t, sms, 1)
	require.Equal(t, MeterName, sms[0].Scope.Name)
	byName := map[string]metricdata.Histogram[float64]{}
	for _, m := range sms[0].Metrics {
		require.Equal(t, unitSeconds, m.Unit)
		byName[m.Name] = m.Data.(metricdata.Histogram[float64])
	}
	require.Len(t, byName, 2)
	wait := byName[metricWait]
	require.Equal(t, metricdata.CumulativeTemporality, wait.Temporality)
	require.Len(t, wait.DataPoints, 1)
	require.Equal(t, attribute.NewSet(attrQueue.String("q"), attrKind.String("a")), wait.DataPoints[0].Attributes)
	dur := byName[metricDuration]
	require.Len(t, dur.DataPoints, 2)
	counts := map[string]uint64{}
	for _, dp := range dur.DataPoints {
		o, _ := dp.Attributes.Value(attrOutcome)
		counts[o.AsString()] = dp.Count
		require.Equal(t, p.start, dp.StartTime)
		require.False(t, dp.Time.Before(dp.StartTime))
	}
	require.Equal(t, map[string]uint64{"succeeded": 2, "retried": 1}, counts)
}

// TestHistogramSumDoesNotWrap: the sum is kept in float64 seconds, so
// durations that would overflow a nanosecond counter add up.
func TestHistogramSumDoesNotWrap(t *testing.T) {
	var h histogram
	h.record(time.Duration(math.MaxInt64))
	h.record(time.Duration(math.MaxInt64))
	dp, ok := h.dataPoint()
	require.True(t, ok)
	require.InDelta(t, 2*time.Duration(math.MaxInt64).Seconds(), dp.Sum, 1)
}
