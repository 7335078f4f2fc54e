package telemetry

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/log"
	"github.com/plba/plba/platform/task"
)

// delivery is the context Starting returns to the handler, in one
// allocation of 80 bytes: for an unsampled delivery it is also the
// handler's span (the producer's span context, answered for package
// trace's span key, see spanKey); it holds the label set Finished records
// with (which leads to the observer's tracer provider), and the task the
// log fields are rendered from when a logger asks. Its size matters on
// the peers harness, where every byte a delivery allocates is fresh
// memory whose first touch costs more than the allocation
// (BENCHMARKS.md).
type delivery struct {
	context.Context
	*spanMarker // a non-recording span: see the Span methods in fastpath.go
	// tid, sid, flags and ts are the span context of the handler's span
	// (SpanContext): the producer's for an unsampled delivery (hasSpan),
	// else the consumer span's. ts is nil when the trace state is empty.
	tid     trace.TraceID
	sid     trace.SpanID
	ts      *trace.TraceState
	ls      *labelSet
	t       *task.Task
	attempt int32
	flags   trace.TraceFlags
	hasSpan bool
}

// spanMarker carries the unexported method of trace.Span (package
// embedded's), which a delivery gets by embedding a nil *spanMarker: 8
// bytes where the embedded interface takes 16. The method is a marker
// that nothing calls.
type spanMarker struct{ embedded.Span }

// setSpanContext keeps sc as the handler's span context.
func (d *delivery) setSpanContext(sc trace.SpanContext) {
	d.tid, d.sid, d.flags = sc.TraceID(), sc.SpanID(), sc.TraceFlags()
	if sc.TraceState().Len() > 0 {
		ts := sc.TraceState() // on the heap only when there is one
		d.ts = &ts
	}
}

// fields returns the delivery's log fields.
func (d *delivery) fields() DeliveryFields {
	return DeliveryFields{
		TraceID: d.tid,
		SpanID:  d.sid,
		TaskID:  d.t.ID,
		Kind:    d.t.Kind,
		Queue:   d.t.Queue,
		Attempt: int(d.attempt),
	}
}

// LogFields implements log.FieldsCarrier: the parent context's log fields
// and the delivery's own (trace_id, span_id, task id, kind, queue,
// attempt, rendered lazily). The delivery answers platform/log's key
// itself, so attaching the fields costs no allocation of its own; these
// happen only when a logger is derived.
func (d *delivery) LogFields() []zap.Field {
	parent := log.Fields(d.Context)
	f := d.fields()
	out := make([]zap.Field, 0, len(parent)+1)
	return append(append(out, parent...), zap.Inline(&f))
}

// deliveryKey finds the delivery among a context's ancestors.
type deliveryKey struct{}

// Value answers the span key with the delivery itself (unsampled
// deliveries) and deliveryKey with d; everything else from the parent.
func (d *delivery) Value(k any) any {
	if d.hasSpan && k == spanKey {
		return trace.Span(d)
	}
	if _, ok := k.(deliveryKey); ok {
		return d
	}
	if log.IsFieldsKey(k) {
		return d
	}
	return d.Context.Value(k)
}

// Starting extracts the producer's trace context from t's headers and
// starts the delivery's consumer span ("<queue> process", kind Consumer).
//
// The consumer span is a child of the producer span, unless ctx already
// carries an active span of a different trace (a worker that processes a
// batch under its own span, say): then it is a child of that span and
// links to the producer span instead. Baggage from the headers is added
// to the context either way. Starting also records the queue wait (first
// attempts only) and attaches the delivery's log fields.
func (o *Observer) Starting(ctx context.Context, t *task.Task) context.Context {
	if t == nil {
		return ctx
	}
	ls := o.labels.getStarted(t.Queue, t.Kind)
	o.recordWait(t, ls)
	d := &delivery{ls: ls, t: t, attempt: int32(t.Attempt)}
	parent := trace.SpanContextFromContext(ctx)
	pctx, producer := o.extractFast(ctx, t)
	if pctx == nil {
		pctx = o.prop.Extract(ctx, Carrier(t))
		producer = trace.SpanContextFromContext(pctx)
	}
	if o.reuseUnsampled && !parent.IsValid() && producer.IsValid() && !producer.IsSampled() {
		// Unsampled trace: keep its ids for the logs and downstream
		// calls, skip the span (it would be dropped anyway).
		if spanKey != nil {
			d.hasSpan = true
		} else {
			pctx = trace.ContextWithRemoteSpanContext(pctx, producer)
		}
		d.setSpanContext(producer)
		d.Context = pctx // d carries the log fields itself (LogFields)
		return d
	}
	if producer.IsValid() {
		// extractFast read it, or the propagator put it on pctx already.
		pctx = trace.ContextWithRemoteSpanContext(pctx, producer)
	}
	linked := false
	if producer.IsValid() && parent.IsValid() && producer.TraceID() != parent.TraceID() {
		linked = true
		if b := baggage.FromContext(pctx); b.Len() > 0 {
			ctx = baggage.ContextWithBaggage(ctx, b)
		}
	} else {
		ctx = pctx
	}
	ctx, span := o.tracer.Start(ctx, ls.processName, consumerOptions...)
	if linked && span.IsRecording() {
		span.AddLink(trace.Link{SpanContext: producer})
	}
	d.setSpanContext(span.SpanContext())
	d.Context = ctx // d carries the log fields itself (LogFields)
	return d
}

// extractFast reads a version 00 traceparent (and tracestate and
// baggage, when present) from t's headers: the producer's span context,
// and ctx with the baggage. A nil context means the headers need the
// generic propagator.
func (o *Observer) extractFast(ctx context.Context, t *task.Task) (context.Context, trace.SpanContext) {
	tp := t.Header(headerTraceparent)
	if tp == "" {
		if t.Header(headerBaggage) != "" {
			return propagation.Baggage{}.Extract(ctx, Carrier(t)), trace.SpanContext{}
		}
		return ctx, trace.SpanContext{}
	}
	tid, sid, flags, ok := parseTraceparent(tp)
	if !ok {
		return nil, trace.SpanContext{}
	}
	cfg := trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true}
	if len(t.Headers) == 1 {
		return ctx, trace.NewSpanContext(cfg) // the traceparent alone
	}
	if ts := t.Header(headerTracestate); ts != "" {
		if s, err := trace.ParseTraceState(ts); err == nil {
			cfg.TraceState = s
		}
	}
	if t.Header(headerBaggage) != "" {
		ctx = propagation.Baggage{}.Extract(ctx, Carrier(t))
	}
	return ctx, trace.NewSpanContext(cfg)
}

// recordWait records the queue wait of a first attempt. time.Since reads
// only the monotonic clock when EnqueuedAt has a reading of it (a task
// enqueued in this process, on the memory backend): in the peers harness
// the wall clock read of time.Now was a quarter of Starting's time.
func (o *Observer) recordWait(t *task.Task, ls *labelSet) {
	if t.Attempt <= 1 && !t.EnqueuedAt.IsZero() {
		if wait := time.Since(t.EnqueuedAt); wait >= 0 {
			ls.wait.record(wait)
		}
	}
}

// Finished ends the delivery's consumer span and records its metrics.
// A failed delivery (err != nil, or dead-lettered) gets error status; a
// dead-lettered one the event "dead_letter" with the reason; a retried
// one the attribute plba.task.retry=true (the retry is a new delivery and
// gets a new consumer span with the next attempt number).
func (o *Observer) Finished(ctx context.Context, t *task.Task, out task.Outcome, err error, reason string, took time.Duration) {
	d, _ := ctx.(*delivery)
	if d == nil {
		d, _ = ctx.Value(deliveryKey{}).(*delivery)
	}
	var span trace.Span
	if d != nil && d.hasSpan {
		span = d
	} else {
		span = trace.SpanFromContext(ctx)
	}
	if span.IsRecording() {
		if t != nil {
			// All attributes in one call, at the end: the SDK sizes the
			// span's attribute slice once.
			attrs := [...]attribute.KeyValue{attrSystem,
				AttrMessagingDestination.String(t.Queue),
				AttrMessagingMessageID.String(t.ID),
				attrOpProcess, attrOpNameProc,
				AttrTaskKind.String(t.Kind),
				AttrTaskAttempt.Int(t.Attempt),
				AttrTaskOutcome.String(string(out)),
				attrRetryTrue}
			n := len(attrs)
			if out != task.Retried {
				n-- // plba.task.retry only on a retried delivery
			}
			span.SetAttributes(attrs[:n]...)
		}
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		if out == task.DeadLettered {
			span.AddEvent(EventDeadLetter, trace.WithAttributes(AttrDeadLetterReason.String(reason)))
			if err == nil {
				span.SetStatus(codes.Error, reason)
			}
		}
		span.End()
	}
	if t == nil {
		return
	}
	var ls *labelSet
	if d != nil {
		ls = d.ls.withOutcome(&o.labels, out)
	} else {
		ls = o.labels.get(t.Queue, t.Kind, out)
	}
	ls.counts[countProcessed].Add(1)
	if handlerFailed(err) || out == task.DeadLettered {
		ls.counts[countFailed].Add(1)
	}
	switch out {
	case task.Retried:
		ls.counts[countRetried].Add(1)
	case task.DeadLettered:
		ls.counts[countDeadLettered].Add(1)
	}
	if took != task.NotRun {
		ls.duration.record(took) // the handler's run time: none for a delivery that ran none
	}
}

// handlerFailed reports whether err, Finished's, says the handler failed:
// not nil, not a *task.SettleError (a handler that succeeded and whose
// ack the backend refused), and not task.ErrStopped (a handler its pool's
// Stop cancelled: the task went back to the queue).
func handlerFailed(err error) bool {
	if err == nil {
		return false
	}
	if _, settle := err.(*task.SettleError); settle {
		return false
	}
	return !errors.Is(err, task.ErrStopped)
}

// DeadLettered counts t, which the queue backend dead-lettered on its own
// (task.DeadObserver), on plba.task.dead_lettered. It is no delivery this
// process settled: plba.task.processed, plba.task.failed and the duration
// histogram are left alone, and there is no span (the backend's reason is
// in the dead letter and in the runtime's log line).
func (o *Observer) DeadLettered(_ context.Context, t *task.Task, _ string) {
	if t == nil {
		return
	}
	o.labels.get(t.Queue, t.Kind, task.DeadLettered).counts[countDeadLettered].Add(1)
}
