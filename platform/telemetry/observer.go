package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

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
	_ task.Observer     = (*Observer)(nil)
	_ task.DeadObserver = (*Observer)(nil)
	_ SourceObserver    = (*Observer)(nil)
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
// when err != nil) and counts the tasks on plba.task.enqueued: outcome
// "error" when the backend refused the batch, "duplicate" for a task it
// dropped because another holds its key (marked task.Held or
// task.Finished) and for one it stored already (task.StoredAgain: an
// earlier Enqueue stored it), nothing stored either way, else "ok".
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
		out := outcome
		if err == nil && (task.Dropped(t) || task.StoredAgain(t)) {
			out = outcomeDuplicate
		}
		ls := o.labels.getLast(run, t.Queue, t.Kind, out)
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

// outcomeDuplicate is the plba.task.enqueued outcome of a task the
// backend dropped as a duplicate, or had stored already.
const outcomeDuplicate task.Outcome = "duplicate"
