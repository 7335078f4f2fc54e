package telemetry

import (
	"context"
	"fmt"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Reasons of plba.telemetry.spans_dropped.
const (
	// DropQueueFull: the span ended while the export buffer
	// (traces.max_queue_size) was full, as it is while the exporter is
	// down or slower than the spans arrive.
	DropQueueFull = "queue_full"
	// DropExportFailed: the span was in a batch the exporter refused or
	// did not take in time.
	DropExportFailed = "export_failed"
)

// spanDrops counts the sampled spans the batch export lost. The batch span
// processor drops a span without blocking when its queue is full, but
// counts it only where nothing reads it (and export errors only reach the
// global error handler); so New puts a dropCountingProcessor in front of
// it and a dropCountingExporter behind it, which keep the spans between
// the two (pending) under the processor's queue size: the processor's
// queue then never overflows, and every span that does not fit is dropped
// and counted here.
type spanDrops struct {
	max                     int64
	pending                 atomic.Int64
	queueFull, exportFailed atomic.Int64
	// stopped ends the exports still running, and fails those still to
	// come, once Shutdown stopped waiting for them (abort): the batch
	// processor's own shutdown gives up on its context but goes on
	// exporting what it holds, each batch up to the exporter's timeout.
	stopped context.Context
	abort   context.CancelFunc
}

// dropCountingProcessor drops and counts the sampled spans that would not
// fit in the batch processor's buffer, and hands the others on.
type dropCountingProcessor struct {
	sdktrace.SpanProcessor
	d *spanDrops
}

// OnEnd hands s to the batch processor, or counts it as dropped when the
// buffer is full. It never blocks.
func (p dropCountingProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanContext().IsSampled() { // the batch processor exports only those
		if p.d.pending.Add(1) > p.d.max {
			p.d.pending.Add(-1)
			p.d.queueFull.Add(1)
			return
		}
	}
	p.SpanProcessor.OnEnd(s)
}

// dropCountingExporter takes the spans it exports off the pending count
// and counts those of a failed export.
type dropCountingExporter struct {
	sdktrace.SpanExporter
	d *spanDrops
}

// ExportSpans exports spans, counting them as dropped when it fails.
func (e dropCountingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.d.pending.Add(-int64(len(spans)))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(e.d.stopped, cancel)
	defer stop()
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err != nil {
		e.d.exportFailed.Add(int64(len(spans)))
	}
	return err
}

// newDropCountingBatcher returns the batch span processor over exporter
// with opts, its drops counted in the returned spanDrops.
func newDropCountingBatcher(exporter sdktrace.SpanExporter, maxQueueSize int, opts ...sdktrace.BatchSpanProcessorOption) (sdktrace.SpanProcessor, *spanDrops) {
	d := &spanDrops{max: int64(maxQueueSize)}
	d.stopped, d.abort = context.WithCancel(context.Background())
	bsp := sdktrace.NewBatchSpanProcessor(dropCountingExporter{SpanExporter: exporter, d: d},
		append(opts, sdktrace.WithMaxQueueSize(maxQueueSize))...)
	return dropCountingProcessor{SpanProcessor: bsp, d: d}, d
}

// observeSpanDrops registers the callback of plba.telemetry.spans_dropped
// over d.
func (in *instruments) observeSpanDrops(d *spanDrops) (metric.Registration, error) {
	queueFull := metric.WithAttributeSet(attribute.NewSet(attrReason.String(DropQueueFull)))
	exportFailed := metric.WithAttributeSet(attribute.NewSet(attrReason.String(DropExportFailed)))
	reg, err := in.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(in.spansDropped, d.queueFull.Load(), queueFull)
		o.ObserveInt64(in.spansDropped, d.exportFailed.Load(), exportFailed)
		return nil
	}, in.spansDropped)
	if err != nil {
		return nil, fmt.Errorf("telemetry: register span drop counter: %w", err)
	}
	return reg, nil
}
