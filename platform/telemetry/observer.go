package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/log"
	"github.com/plba/plba/platform/task"
)

// Span attribute keys set on producer and consumer spans.
const (
	AttrMessagingSystem        = attribute.Key("messaging.system")
	AttrMessagingDestination   = attribute.Key("messaging.destination.name")
	AttrMessagingMessageID     = attribute.Key("messaging.message.id")
	AttrMessagingOperationType = attribute.Key("messaging.operation.type")
	AttrMessagingOperationName = attribute.Key("messaging.operation.name")
	AttrTaskKind               = attribute.Key("plba.task.kind")
	AttrTaskAttempt            = attribute.Key("plba.task.attempt")
	AttrTaskOutcome            = attribute.Key("plba.task.outcome")
	AttrTaskRetry              = attribute.Key("plba.task.retry")
	AttrDeadLetterReason       = attribute.Key("plba.dead_letter.reason")
	AttrSourceName             = attribute.Key("plba.source.name")
)

// MessagingSystem is the value of messaging.system on task spans.
const MessagingSystem = "plba"

// EventDeadLetter is the name of the span event a dead-lettered delivery's
// consumer span carries (with AttrDeadLetterReason).
const EventDeadLetter = "dead_letter"

var (
	attrSystem      = AttrMessagingSystem.String(MessagingSystem)
	attrOpSend      = AttrMessagingOperationType.String("send")
	attrOpPublish   = AttrMessagingOperationName.String("publish")
	attrOpProcess   = AttrMessagingOperationType.String("process")
	attrOpNameProc  = AttrMessagingOperationName.String("process")
	attrRetryTrue   = AttrTaskRetry.Bool(true)
	producerOptions = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}
	consumerOptions = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	pollOptions     = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}
)

// Observer implements task.Observer with spans, metrics and log fields,
// and SourceObserver for source polls. Build it with NewObserver or take
// it from Telemetry. It is safe for concurrent use.
//
// Trace context crosses the queue in the task's headers (traceparent,
// tracestate, baggage), so producer and consumer may be different
// processes with different tracer providers.
type Observer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	inst   *instruments
	now    func() time.Time
	labels labelCache
	srcs   sourceCache
	// reuseUnsampled: the sampler never samples a child of an unsampled
	// parent (the parent-based samplers), so a delivery whose producer
	// was not sampled runs under the producer's span context instead of
	// a new non-recording span that nobody would ever see.
	reuseUnsampled bool
}

var (
	_ task.Observer  = (*Observer)(nil)
	_ SourceObserver = (*Observer)(nil)
)

// enqueueKey keys the producer spans Enqueuing hands to Enqueued.
type enqueueKey struct{}

// enqueueState holds the recording producer spans of one Enqueuing call.
// Non-recording spans need no End, so at 0% sampling nothing is stored.
type enqueueState struct{ spans []trace.Span }

// Enqueuing starts one producer span per task ("<queue> publish", kind
// Producer) as a child of ctx's span and injects its context into the
// task's headers. Attributes are set only on recording spans, after start
// (samplers see the span's name and kind, not its attributes).
func (o *Observer) Enqueuing(ctx context.Context, tasks []*task.Task) context.Context {
	var st *enqueueState
	for _, t := range tasks {
		if t == nil {
			continue
		}
		ls := o.labels.get(t.Queue, t.Kind, "")
		sctx, span := o.tracer.Start(ctx, ls.publishName, producerOptions...)
		if span.IsRecording() {
			span.SetAttributes(attrSystem,
				AttrMessagingDestination.String(t.Queue),
				AttrMessagingMessageID.String(t.ID),
				attrOpSend, attrOpPublish,
				AttrTaskKind.String(t.Kind))
			if st == nil {
				st = &enqueueState{spans: make([]trace.Span, 0, len(tasks))}
			}
			st.spans = append(st.spans, span)
		}
		o.prop.Inject(sctx, Carrier(t))
	}
	if st == nil {
		return ctx
	}
	return context.WithValue(ctx, enqueueKey{}, st)
}

// Enqueued ends the producer spans Enqueuing started (with error status
// when err != nil) and counts the tasks on plba.task.enqueued.
func (o *Observer) Enqueued(ctx context.Context, tasks []*task.Task, err error) {
	if st, ok := ctx.Value(enqueueKey{}).(*enqueueState); ok {
		for _, s := range st.spans {
			if err != nil {
				s.RecordError(err)
				s.SetStatus(codes.Error, err.Error())
			}
			s.End()
		}
	}
	outcome := task.Outcome("ok")
	if err != nil {
		outcome = "error"
	}
	// Count runs of equal (queue, kind) with one Add each.
	var run *labelSet
	n := int64(0)
	for _, t := range tasks {
		if t == nil {
			continue
		}
		ls := o.labels.get(t.Queue, t.Kind, outcome)
		if ls != run {
			if run != nil {
				o.inst.enqueued.Add(context.Background(), n, run.add...)
			}
			run, n = ls, 0
		}
		n++
	}
	if run != nil {
		o.inst.enqueued.Add(context.Background(), n, run.add...)
	}
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
	ls := o.labels.get(t.Queue, t.Kind, "")
	parent := trace.SpanContextFromContext(ctx)
	pctx := o.prop.Extract(ctx, Carrier(t))
	producer := trace.SpanContextFromContext(pctx)
	if o.reuseUnsampled && !parent.IsValid() && producer.IsValid() && !producer.IsSampled() {
		// Unsampled trace: keep its ids for the logs and downstream
		// calls, skip the span (it would be dropped anyway).
		o.recordWait(t, ls)
		return attachLogFields(pctx, taskFields(t, producer))
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
	o.recordWait(t, ls)
	return attachLogFields(ctx, taskFields(t, span.SpanContext()))
}

// recordWait records the queue wait of a first attempt. Like every
// measurement of the hot path it is made without the span's context:
// exemplars are off (see New), and looking for the span would walk the
// handler's context chain on every task.
func (o *Observer) recordWait(t *task.Task, ls *labelSet) {
	if t.Attempt <= 1 && !t.EnqueuedAt.IsZero() {
		if wait := o.now().Sub(t.EnqueuedAt); wait >= 0 {
			o.inst.wait.Record(context.Background(), wait.Seconds(), ls.rec...)
		}
	}
}

// Finished ends the delivery's consumer span and records its metrics.
// A failed delivery (err != nil, or dead-lettered) gets error status; a
// dead-lettered one the event "dead_letter" with the reason; a retried
// one the attribute plba.task.retry=true (the retry is a new delivery and
// gets a new consumer span with the next attempt number).
func (o *Observer) Finished(ctx context.Context, t *task.Task, out task.Outcome, err error, reason string, took time.Duration) {
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() && t != nil {
		// All attributes in one call, at the end: the SDK sizes the
		// span's attribute slice once.
		if out == task.Retried {
			span.SetAttributes(attrSystem,
				AttrMessagingDestination.String(t.Queue),
				AttrMessagingMessageID.String(t.ID),
				attrOpProcess, attrOpNameProc,
				AttrTaskKind.String(t.Kind),
				AttrTaskAttempt.Int(t.Attempt),
				AttrTaskOutcome.String(string(out)),
				attrRetryTrue)
		} else {
			span.SetAttributes(attrSystem,
				AttrMessagingDestination.String(t.Queue),
				AttrMessagingMessageID.String(t.ID),
				attrOpProcess, attrOpNameProc,
				AttrTaskKind.String(t.Kind),
				AttrTaskAttempt.Int(t.Attempt),
				AttrTaskOutcome.String(string(out)))
		}
	}
	if span.IsRecording() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		switch out {
		case task.DeadLettered:
			span.AddEvent(EventDeadLetter, trace.WithAttributes(AttrDeadLetterReason.String(reason)))
			if err == nil {
				span.SetStatus(codes.Error, reason)
			}
		}
	}
	span.End()
	if t == nil {
		return
	}
	ls := o.labels.get(t.Queue, t.Kind, out)
	o.inst.processed.Add(context.Background(), 1, ls.add...)
	if err != nil || out == task.DeadLettered {
		o.inst.failed.Add(context.Background(), 1, ls.add...)
	}
	switch out {
	case task.Retried:
		o.inst.retried.Add(context.Background(), 1, ls.add...)
	case task.DeadLettered:
		o.inst.deadLettered.Add(context.Background(), 1, ls.add...)
	}
	o.inst.duration.Record(context.Background(), took.Seconds(), ls.rec...)
}

// SourceObserver sees a source's polls and emits. The source supervisor
// calls it; Telemetry provides one (a no-op when telemetry is off).
type SourceObserver interface {
	// StartPoll starts a span for one poll of source; tasks emitted under
	// the returned context become its children. end(err) ends the span,
	// counting err on plba.source.errors.
	StartPoll(ctx context.Context, source string) (context.Context, func(err error))
	// Emitted counts n tasks emitted by source.
	Emitted(ctx context.Context, source string, n int)
}

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
func (o *Observer) StartPoll(ctx context.Context, source string) (context.Context, func(error)) {
	ctx, span := o.tracer.Start(ctx, source+" poll", pollOptions...)
	if span.IsRecording() {
		span.SetAttributes(AttrSourceName.String(source))
	}
	sc := span.SpanContext()
	ctx = log.With(ctx, zap.Inline(&PollFields{TraceID: sc.TraceID(), SpanID: sc.SpanID(), Source: source}))
	return ctx, func(err error) {
		if err != nil {
			if span.IsRecording() {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			o.inst.sourceErrors.Add(context.Background(), 1, o.srcs.get(source)...)
		}
		span.End()
	}
}

// Emitted counts n tasks emitted by source on plba.source.emitted.
func (o *Observer) Emitted(ctx context.Context, source string, n int) {
	if n <= 0 {
		return
	}
	o.inst.sourceEmitted.Add(context.Background(), int64(n), o.srcs.get(source)...)
}

// Carrier returns a propagation.TextMapCarrier over t's headers (allocating
// the map on the first Set). It does not allocate itself.
func Carrier(t *task.Task) propagation.TextMapCarrier { return taskCarrier{t} }

type taskCarrier struct{ t *task.Task }

func (c taskCarrier) Get(key string) string { return c.t.Header(key) }

func (c taskCarrier) Set(key, value string) { c.t.SetHeader(key, value) }

func (c taskCarrier) Keys() []string {
	keys := make([]string, 0, len(c.t.Headers))
	for k := range c.t.Headers {
		keys = append(keys, k)
	}
	return keys
}
