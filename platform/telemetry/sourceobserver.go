package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/log"
	"github.com/plba/plba/platform/source"
)

// SourceObserver sees a source's polls and emits: it is source.Observer,
// which the source supervisor calls (around every source.Poll, and where a
// source calls source.StartPoll). Telemetry provides one (a no-op when
// telemetry is off): StartPoll starts the span "<source> poll", whose
// children are the tasks emitted under it, and counts a failed poll on
// plba.source.errors (not one its source's stop cut short); Emitted counts
// on plba.source.emitted.
type SourceObserver = source.Observer

// NopSourceObserver observes nothing.
type NopSourceObserver struct{}

// StartPoll returns ctx and an end function that does nothing.
func (NopSourceObserver) StartPoll(ctx context.Context, _ string) (context.Context, func(error)) {
	return ctx, func(error) {}
}

// Emitted does nothing.
func (NopSourceObserver) Emitted(context.Context, string, int) {}

// StartPoll starts the span "<source> poll" (kind Internal, attribute
// plba.source.name) for one poll of source, and attaches PollFields
// (trace_id, span_id, source) to the returned context for log.FromContext.
// A poll that ends with an error after ctx ended was stopped (the host
// stops, an exclusive source lost its lease), not failed: its span gets
// the event "stopped" and it is not counted on plba.source.errors.
func (o *Observer) StartPoll(ctx context.Context, source string) (context.Context, func(error)) {
	run := ctx
	ctx, span := o.tracer.Start(ctx, source+" poll", pollOptions...)
	if span.IsRecording() {
		span.SetAttributes(AttrSourceName.String(source))
	}
	sc := span.SpanContext()
	ctx = log.With(ctx, zap.Inline(&PollFields{TraceID: sc.TraceID(), SpanID: sc.SpanID(), Source: source}))
	return ctx, func(err error) {
		if err != nil && run.Err() != nil {
			if span.IsRecording() {
				span.AddEvent("stopped")
			}
		} else if err != nil {
			if span.IsRecording() {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			o.inst.sourceErrors.Add(context.Background(), 1, o.srcs.get(source)...)
		}
		span.End()
	}
}

// Emitted counts n tasks that source emitted and the backend stored (not
// the duplicates it dropped) on plba.source.emitted.
func (o *Observer) Emitted(ctx context.Context, source string, n int) {
	if n <= 0 {
		return
	}
	o.inst.sourceEmitted.Add(context.Background(), int64(n), o.srcs.get(source)...)
}
