// Package telemetry builds the platform's OpenTelemetry tracer and meter
// providers from the "telemetry" config section, propagates trace context
// through task headers, and observes every task on its way through the
// runtime (task.Observer): spans, metrics and trace-correlated log fields.
//
// # Traces
//
// Enqueuing a task starts a producer span "<queue> publish" (kind
// Producer) under the caller's span and injects its context into the
// task's headers (traceparent, tracestate, baggage) through Carrier. Each
// delivery starts a consumer span "<queue> process" (kind Consumer),
// a child of the producer span extracted from the headers, so one trace
// runs from the source's poll (StartPoll) through the enqueue to every
// delivery, across processes and backends. When the worker's context
// already carries a span of another trace (a batch span), the consumer
// span stays in that trace and links to the producer span instead.
//
// A retry is a new delivery: a new consumer span with the next
// plba.task.attempt; the failed one ends with error status and
// plba.task.retry=true. A dead-lettered delivery's span carries the event
// "dead_letter" with plba.dead_letter.reason.
//
// Span attributes: messaging.system=plba, messaging.destination.name
// (queue), messaging.message.id (task id), messaging.operation.type
// (send on the producer, process on the consumer), messaging.operation.name
// (publish, process), plba.task.kind, plba.task.attempt (consumer),
// plba.task.outcome (consumer). They are set only on recording spans (on
// the producer span after it starts, on the consumer span when it ends, in
// one call each): samplers see name and kind only, and unsampled tasks pay
// nothing for them.
//
// Exporter "none" (the default) records nothing but still creates and
// propagates trace context, so log lines carry trace ids.
//
// # Logs
//
// Starting attaches DeliveryFields (trace_id, span_id, task_id, task_kind,
// queue, attempt) to the handler's context through platform/log: the
// delivery's own context value is a log.FieldsCarrier (no extra
// allocation; one lazy zap.Inline field rendered only when a line is
// written), so every logger derived with log.FromContext carries them.
// A source poll (StartPoll) attaches PollFields
// (trace_id, span_id, source) the same way. Logger(ctx, base) is
// log.FromContext plus the ids of the active span when ctx carries
// neither.
//
// An unsampled delivery (the producer's trace was not sampled and the
// sampler is parent-based, the default) runs under the producer's span
// context rather than a span of its own that would never be recorded; its
// log lines then name the producer's span id. Likewise no producer span is
// started that could not be recorded: tasks enqueued under an unsampled
// span carry that span's context (parent-based samplers), and for a new
// trace the sampler is asked first with fresh ids (the tracer provider
// then starts the span with those ids, so the decision is made once); a
// dropped trace's tasks carry the ids with the sampled flag off. When the
// sampler drops every new trace (exporter "none", the default; sampler
// "never"; ratio 0) the tasks of one Enqueue call that start a trace share
// one: the span context of the batch's publish operation, as the
// OpenTelemetry messaging conventions have a batch's messages carry the
// send operation's context when there is no creation span per message.
// The traceparent string is rendered once; every task keeps a header map
// of its own (a shared map would carry one task's write into the others). The W3C
// headers are written and read without the propagators' generic carrier
// machinery (fastpath.go), with the propagator's results: the sampled and
// random flags are kept, a version 00 traceparent with a reserved flag
// bit is dropped; a traceparent of another version goes through the
// propagator.
//
// # Sources
//
// The Observer is also the source supervisor's source.Observer: each poll
// of a source.Poll (or a source's own source.StartPoll) is a span
// "<source> poll" whose children are the producer spans of the tasks it
// emits, and the supervisor's emitters count on plba.source.emitted.
//
// # METRICS
//
// docs/metrics.md is the reference for operators. Names and units follow
// the OpenTelemetry conventions; the Prometheus
// exporter (served by MetricsHandler, mounted at /metrics) turns dots into
// underscores and appends the unit and _total (plba.task.duration becomes
// plba_task_duration_seconds, plba.task.enqueued plba_task_enqueued_total).
//
//	name                      type       unit        attributes              what
//	plba.task.enqueued        counter    {task}      queue, kind, outcome    tasks handed to the backend; outcome ok|duplicate|error
//	plba.task.processed       counter    {delivery}  queue, kind, outcome    finished deliveries; outcome succeeded|retried|dead_lettered|returned (returned: not settled)
//	plba.task.failed          counter    {delivery}  queue, kind, outcome    deliveries whose handler failed, or dead-lettered
//	plba.task.retried         counter    {delivery}  queue, kind, outcome    deliveries scheduled for another attempt (outcome retried)
//	plba.task.dead_lettered   counter    {task}      queue, kind, outcome    tasks moved to the dead letter (also by the backend on its own: task.DeadObserver)
//	plba.task.settle_failed   counter    {delivery}  queue, op               settlements the backend refused (or panicked in); op ack|retry|dead_letter|release (PoolStatser)
//	plba.task.completion_failed counter  {task}      queue                   completions a source failed after the settlement, or outcomes not told before a stop (PoolStatser)
//	plba.task.duration        histogram  s           queue, kind, outcome    handler run time per delivery
//	plba.task.queue_wait      histogram  s           queue, kind             first enqueue to start of the first delivery
//	plba.queue.depth          gauge      {task}      queue                   ready tasks (QueueStatser)
//	plba.queue.in_flight      gauge      {task}      queue                   leased, unsettled tasks (QueueStatser)
//	plba.queue.delayed        gauge      {task}      queue                   tasks waiting for their not-before time (QueueStatser)
//	plba.queue.dead           gauge      {task}      queue                   dead letters (QueueStatser)
//	plba.queue.dead_discarded counter    {task}      queue                   dead letters discarded at the backend's bound (QueueStatser)
//	plba.queue.finished_keys_forgotten counter {key} queue                   finished keys forgotten at the backend's bound before their window ended (QueueStatser)
//	plba.pool.size            gauge      {worker}    queue                   pool concurrency (PoolStatser)
//	plba.pool.busy            gauge      {worker}    queue                   workers running a handler (PoolStatser)
//	plba.telemetry.spans_dropped counter {span}      reason                  sampled spans the trace export lost; reason queue_full|export_failed (spandrops.go)
//	plba.source.emitted       counter    {task}      source                  tasks a source emitted that the backend stored (SourceObserver.Emitted)
//	plba.source.errors        counter    {error}     source                  failed polls (SourceObserver.StartPoll)
//	go.*                      various                                        Go runtime (go.memory.used, go.goroutine.count, ...; metrics.runtime)
//
// Histogram buckets (s): 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1
// 2.5 5 10 30 60 120 300. Label sets are cached per (queue, kind, outcome);
// past 4096 combinations new kinds are reported as kind="_other", and
// past 256 more new queues as queue="_other" too, which bounds memory and
// cardinality against producers of arbitrary kinds or queue names. The
// plba.queue.* series name the first MaxQueueSeries queues listed and sum
// the others as queue="_other".
//
// # Cost
//
// Telemetry off (no span exporter, metrics disabled) gives task.NopObserver.
// Otherwise the hot path builds no attribute slices, sets or label maps
// per task (they are cached per queue, kind and outcome), records metrics
// without walking the handler's context, and keeps no exemplars. The task
// counters are observable counters: a task adds to atomic counts on its
// cached label set and a callback reports them on collection (the
// exported metrics are the same monotonic sums). The two histograms are
// aggregated the same way, in atomic buckets on the label set, and handed
// to every metric reader New builds as an sdkmetric.Producer (same names,
// units, bounds, attributes, min and max, cumulative temporality); a
// synchronous SDK histogram cost a lock and an attribute-set check per
// measurement. See BenchmarkObserver and BenchmarkTelemetryOverhead, and
// BENCHMARKS.md.
//
// # Wiring
//
// Module provides everything from a Config in the graph and mounts
// "GET /metrics" on the admin server (admin.routes); New does the same
// without fx. Shutdown flushes and must run after the worker pools drained
// (the fx hook order guarantees it).
package telemetry
