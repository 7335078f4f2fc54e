package telemetry_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/telemetry"
)

// downExporter is a collector that is down: every export hangs until
// released (or its context ends), then fails.
type downExporter struct {
	release chan struct{}
	got     atomic.Int64
}

var errCollectorDown = errors.New("collector down")

func (e *downExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.got.Add(int64(len(spans)))
	select {
	case <-e.release:
	case <-ctx.Done():
	}
	return errCollectorDown
}

func (e *downExporter) Shutdown(context.Context) error { return nil }

// TestDownExporterNeverBlocksAndItsDropsAreCounted: while the exporter
// hangs, deliveries go on (spans beyond the export buffer are dropped
// without waiting), and every span it lost is counted on
// plba.telemetry.spans_dropped: those that found the buffer full
// (queue_full) and those of the batches it failed (export_failed).
func TestDownExporterNeverBlocksAndItsDropsAreCounted(t *testing.T) {
	const n, maxQueue, maxBatch = 40, 4, 2
	exp := &downExporter{release: make(chan struct{})}
	cfg := telemetry.Config{}
	cfg.Metrics.Runtime = telemetry.Bool(false)
	cfg.Traces.Sampler = telemetry.SamplerAlways
	cfg.Traces.MaxQueueSize = maxQueue
	cfg.Traces.MaxExportBatchSize = maxBatch
	cfg.Traces.BatchTimeout = 5 * time.Millisecond
	var reader *sdkmetric.ManualReader
	tel, err := telemetry.New(context.Background(), cfg, telemetry.WithSpanExporter(exp),
		telemetry.WithMetricReader(func(p sdkmetric.Producer) sdkmetric.Reader {
			reader = sdkmetric.NewManualReader(sdkmetric.WithProducer(p))
			return reader
		}))
	require.NoError(t, err)
	released := false
	defer func() {
		if !released {
			close(exp.release)
		}
		require.NoError(t, tel.Shutdown(context.Background()))
	}()
	collect := func() metricdata.ResourceMetrics {
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(context.Background(), &rm))
		return rm
	}
	dropped := func(rm metricdata.ResourceMetrics, reason string) int64 {
		return sumCounter(t, rm, "plba.telemetry.spans_dropped", map[string]string{"reason": reason})
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			deliver(context.Background(), tel.Observer(), newTask("k", "q"), 1, task.Succeeded, nil, "", nil)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		require.FailNow(t, "deliveries blocked on a hanging span exporter")
	}
	// At most the buffer and the batch the exporter hangs on are kept.
	require.GreaterOrEqual(t, dropped(collect(), telemetry.DropQueueFull), int64(n-maxQueue-maxBatch))

	close(exp.release)
	released = true
	// The kept spans are exported now (by the flush or just before it),
	// and fail.
	if err := tel.ForceFlush(context.Background()); err != nil {
		require.ErrorIs(t, err, errCollectorDown)
	}
	rm := collect()
	require.Equal(t, exp.got.Load(), dropped(rm, telemetry.DropExportFailed), "every span of a failed export is counted")
	require.Equal(t, int64(n), dropped(rm, telemetry.DropQueueFull)+dropped(rm, telemetry.DropExportFailed),
		"every span is either exported or counted as dropped")
	mfs := scrape(t, tel.MetricsHandler())
	require.Equal(t, float64(dropped(rm, telemetry.DropQueueFull)),
		promValue(t, mfs, "plba_telemetry_spans_dropped_total", map[string]string{"reason": telemetry.DropQueueFull}))
}
