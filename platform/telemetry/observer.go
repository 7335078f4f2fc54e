package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/log"
	"github.com/plba/plba/platform/source"
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
// and SourceObserver for source polls. Take it from Telemetry. It is safe for concurrent use.
//
// Trace context crosses the queue in the task's headers (traceparent,
// tracestate, baggage), so producer and consumer may be different
// processes with different tracer providers.
type Observer struct {
	tp     trace.TracerProvider
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	inst   *instruments
	labels labelCache
	srcs   sourceCache
	// reuseUnsampled: the sampler never samples a child of an unsampled
	// parent (the parent-based samplers), so a delivery whose producer
	// was not sampled runs under the producer's span context instead of
	// a new non-recording span that nobody would ever see, and a task
	// enqueued under an unsampled span carries that span's context.
	reuseUnsampled bool
	// sampler, when set, is the tracer provider's sampler and the
	// provider takes its ids from idGenerator: a new trace's producer
	// span is only started when the sampler keeps it; a dropped one
	// costs two random ids and its traceparent.
	sampler sdktrace.Sampler
	// dropsNew: the sampler drops every new trace (set with sampler), so
	// the tasks of one Enqueuing call that start a trace share one
	// dropped span context.
	dropsNew bool
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
//
// No span is started where it could not be recorded: under an unsampled
// span with a parent-based sampler the tasks carry that span's context;
// for a new trace the sampler is asked first, and a dropped trace's
// tasks carry fresh ids with the sampled flag off. When the sampler drops
// every new trace (no exporter, the default; sampler "never"; ratio 0),
// the tasks of one call that start a new trace share one: the context of
// the batch's publish operation, which is what the OpenTelemetry
// messaging conventions inject into every message of a batch that has no
// creation span per message. The tasks carry one rendered traceparent
// string; each task's header map is its own.
func (o *Observer) Enqueuing(ctx context.Context, tasks []*task.Task) context.Context {
	var st *enqueueState
	parent := trace.SpanContextFromContext(ctx)
	var reused, dropped sharedContext // one per call, set on first use
	var ls *labelSet
	for _, t := range tasks {
		if t == nil {
			continue
		}
		if o.reuseUnsampled && parent.IsValid() && !parent.IsSampled() {
			if reused.traceparent == "" {
				reused = newSharedContext(parent)
			}
			reused.inject(ctx, t)
			continue
		}
		ls = o.labels.getLast(ls, t.Queue, t.Kind, "")
		sctx := ctx
		if o.sampler != nil && !parent.TraceID().IsValid() {
			if dropped.traceparent != "" {
				dropped.inject(ctx, t)
				continue
			}
			tid, sid := newTraceIDs()
			res := o.sampler.ShouldSample(sdktrace.SamplingParameters{
				ParentContext: ctx, TraceID: tid, Name: ls.publishName, Kind: trace.SpanKindProducer,
			})
			if res.Decision == sdktrace.Drop {
				sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceState: res.Tracestate})
				if o.dropsNew {
					dropped = newSharedContext(sc)
					dropped.inject(ctx, t)
				} else {
					injectFast(ctx, Carrier(t), sc, formatTraceparent(sc))
				}
				continue
			}
			sctx = context.WithValue(ctx, presetIDsKey{}, &presetIDs{tid: tid, sid: sid})
		}
		sctx, span := o.tracer.Start(sctx, ls.publishName, producerOptions...)
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
		sc := span.SpanContext()
		injectFast(sctx, Carrier(t), sc, formatTraceparent(sc))
	}
	if st == nil {
		return ctx
	}
	return context.WithValue(ctx, enqueueKey{}, st)
}

// sharedContext is a span context that several tasks of one Enqueuing
// call carry, its traceparent rendered once. Each task still gets a
// header map of its own: Task.Headers is a public map that handlers and
// middleware may write, and a map shared by a batch would carry one
// task's write into every other.
type sharedContext struct {
	sc          trace.SpanContext
	traceparent string
}

func newSharedContext(sc trace.SpanContext) sharedContext {
	return sharedContext{sc: sc, traceparent: formatTraceparent(sc)}
}

// inject writes the shared context into t's headers.
func (s *sharedContext) inject(ctx context.Context, t *task.Task) {
	injectFast(ctx, Carrier(t), s.sc, s.traceparent)
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
		ls := o.labels.getLast(run, t.Queue, t.Kind, outcome)
		if ls != run {
			if run != nil {
				run.counts[countEnqueued].Add(n)
			}
			run, n = ls, 0
		}
		n++
	}
	if run != nil {
		run.counts[countEnqueued].Add(n)
	}
}

// delivery is the context Starting returns to the handler, in one
// allocation of 96 bytes: for an unsampled delivery it is also the
// handler's span (the producer's span context, answered for package
// trace's span key, see spanKey); it holds the label set Finished records
// with, and the task the log fields are rendered from when a logger asks.
type delivery struct {
	context.Context
	embedded.Span // a non-recording span: see the Span methods in fastpath.go
	// tid, sid, flags and ts are the span context of the handler's span
	// (SpanContext): the producer's for an unsampled delivery (hasSpan),
	// else the consumer span's. ts is nil when the trace state is empty.
	tid     trace.TraceID
	sid     trace.SpanID
	ts      *trace.TraceState
	o       *Observer
	ls      *labelSet
	t       *task.Task
	attempt int32
	flags   trace.TraceFlags
	hasSpan bool
}

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
	d := &delivery{o: o, ls: ls, t: t, attempt: int32(t.Attempt)}
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
	if err != nil || out == task.DeadLettered {
		ls.counts[countFailed].Add(1)
	}
	switch out {
	case task.Retried:
		ls.counts[countRetried].Add(1)
	case task.DeadLettered:
		ls.counts[countDeadLettered].Add(1)
	}
	ls.duration.record(took)
}

// SourceObserver sees a source's polls and emits: it is source.Observer,
// which the source supervisor calls (around every source.Poll, and where a
// source calls source.StartPoll). Telemetry provides one (a no-op when
// telemetry is off): StartPoll starts the span "<source> poll", whose
// children are the tasks emitted under it, and counts a failed poll on
// plba.source.errors; Emitted counts on plba.source.emitted.
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
