package telemetry

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// The two task histograms (handler duration and queue wait) are
// aggregated here, not by the metric SDK: a synchronous SDK histogram
// re-checks the attribute set and takes a lock on every measurement,
// which was half of the per-task cost of telemetry at 0% sampling. Each
// label set holds its own buckets, updated with atomic adds; a
// histProducer hands them to every metric reader New builds
// (sdkmetric.Producer), as the SDK would have: the same names, units,
// bounds and attributes, cumulative temporality.
//
// Measured on the peers harness (issue 15, BENCHMARKS.md: plba-memory,
// 50,000 tasks, c=8 and 64, against a scratch copy recording both
// histograms through SDK Float64Histograms with the label set's prebuilt
// attribute set, same run): the SDK histograms cost 0.2 to 1.4 µs of CPU
// per task worked more (medians of 5 in three cells, worked/s 259 k to
// 389 k against 401 k to 456 k), at the same allocations. Kept for that.

// Histogram names, units and descriptions (see the METRICS section of the
// package doc).
const (
	metricDuration     = "plba.task.duration"
	metricDurationDesc = "Handler run time of a delivery, by queue, kind and outcome."
	metricWait         = "plba.task.queue_wait"
	metricWaitDesc     = "Time from first enqueue to the start of the first delivery, by queue and kind."
	unitSeconds        = "s"
)

// durationBuckets are the histogram bounds (seconds) for handler duration
// and queue wait: 1ms to 5 minutes.
var durationBuckets = [...]float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 120, 300,
}

// durationBounds are durationBuckets as durations, for bucketIndex.
var durationBounds = func() (b [len(durationBuckets)]time.Duration) {
	for i, s := range durationBuckets {
		b[i] = time.Duration(math.Round(s * float64(time.Second)))
	}
	return b
}()

// bucketIndex returns the bucket of d: the first bound d does not exceed
// (buckets are upper-inclusive, as in OpenTelemetry's explicit bucket
// histogram), or the overflow bucket.
func bucketIndex(d time.Duration) int {
	lo, hi := 0, len(durationBounds)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if durationBounds[m] < d {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// histogram is one explicit-bucket histogram of durations. The zero
// value is empty and ready; record is safe for concurrent use and does
// not allocate.
type histogram struct {
	counts [len(durationBuckets) + 1]atomic.Uint64
	sum    atomic.Uint64 // float64 seconds (math.Float64bits): never wraps
	max    atomic.Int64  // nanoseconds
	// minInv is math.MaxInt64 minus the minimum, so that the zero value
	// means "none yet" and both extremes are an atomic maximum.
	minInv atomic.Int64
}

// record adds d (negative durations count as 0). The sum and the
// extremes are updated before the bucket, so a reader that sees a count
// also sees the extremes of what it counted.
func (h *histogram) record(d time.Duration) {
	d = max(d, 0)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d.Seconds())) {
			break
		}
	}
	atomicMax(&h.max, int64(d))
	atomicMax(&h.minInv, math.MaxInt64-int64(d))
	h.counts[bucketIndex(d)].Add(1)
}

func atomicMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// dataPoint reads h as a data point in seconds; ok is false when nothing
// was recorded. The count is the sum of the buckets read, so the
// overflow bucket and the count always agree; the sum and the extremes,
// read separately, may include measurements made during the read whose
// buckets were not counted yet.
func (h *histogram) dataPoint() (dp metricdata.HistogramDataPoint[float64], ok bool) {
	counts := make([]uint64, len(h.counts))
	var n uint64
	for i := range h.counts {
		counts[i] = h.counts[i].Load()
		n += counts[i]
	}
	if n == 0 {
		return dp, false
	}
	dp.Count = n
	dp.Bounds = durationBuckets[:]
	dp.BucketCounts = counts
	dp.Sum = math.Float64frombits(h.sum.Load())
	dp.Min = metricdata.NewExtrema(time.Duration(math.MaxInt64 - h.minInv.Load()).Seconds())
	dp.Max = metricdata.NewExtrema(time.Duration(h.max.Load()).Seconds())
	return dp, true
}

// histProducer reports the histograms of a label cache to metric
// readers (sdkmetric.WithProducer, otelprom.WithProducer), cumulative
// since it was made. The cache is set once the observer exists.
type histProducer struct {
	labels atomic.Pointer[labelCache]
	start  time.Time
	now    func() time.Time
}

var _ sdkmetric.Producer = (*histProducer)(nil)

func newHistProducer() *histProducer {
	return &histProducer{start: time.Now(), now: time.Now}
}

// Produce returns plba.task.duration and plba.task.queue_wait with a data
// point per label set that recorded any.
func (p *histProducer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	c := p.labels.Load()
	if c == nil {
		return nil, nil
	}
	m := c.m.Load()
	if m == nil {
		return nil, nil
	}
	now := p.now()
	var dur, wait []metricdata.HistogramDataPoint[float64]
	for k, ls := range *m {
		if k != ls.key {
			continue // an alias of the kind="_other" set
		}
		for _, h := range [...]struct {
			h   *histogram
			dst *[]metricdata.HistogramDataPoint[float64]
		}{{&ls.duration, &dur}, {&ls.wait, &wait}} {
			if dp, ok := h.h.dataPoint(); ok {
				dp.Attributes, dp.StartTime, dp.Time = ls.attrs, p.start, now
				*h.dst = append(*h.dst, dp)
			}
		}
	}
	var out []metricdata.Metrics
	if len(dur) > 0 {
		out = append(out, metricdata.Metrics{Name: metricDuration, Description: metricDurationDesc, Unit: unitSeconds,
			Data: metricdata.Histogram[float64]{DataPoints: dur, Temporality: metricdata.CumulativeTemporality}})
	}
	if len(wait) > 0 {
		out = append(out, metricdata.Metrics{Name: metricWait, Description: metricWaitDesc, Unit: unitSeconds,
			Data: metricdata.Histogram[float64]{DataPoints: wait, Temporality: metricdata.CumulativeTemporality}})
	}
	if out == nil {
		return nil, nil
	}
	return []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: MeterName}, Metrics: out}}, nil
}
