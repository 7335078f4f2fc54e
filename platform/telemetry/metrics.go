package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/plba/plba/platform/queue"
)

// MeterName is the instrumentation scope of the platform's instruments.
const MeterName = "github.com/plba/plba/platform/telemetry"

// instruments are the SDK instruments of the observer: the task counters,
// the source counters and the observable gauges fed through QueueStatser
// and PoolStatser. The task histograms are not among them (histogram.go).
type instruments struct {
	meter metric.Meter

	// The task counters are observable: the hot path adds to atomic
	// counts on the label set (labelSet.counts) and a callback reports
	// them on collection, so counting a task costs an atomic add instead
	// of an SDK measurement (attribute set check, aggregator lookup).
	enqueued, processed, failed, retried, deadLettered metric.Int64ObservableCounter
	sourceEmitted, sourceErrors                        metric.Int64Counter

	depth, inFlight, delayed, dead metric.Int64ObservableGauge
	poolSize, poolBusy             metric.Int64ObservableGauge

	// Cumulative counts kept by the backend and the pools themselves,
	// reported on collection like the gauges.
	deadDiscarded, keysForgotten, settleFailed, completionFailed metric.Int64ObservableCounter

	// spansDropped counts the spans the batch export lost (spandrops.go).
	spansDropped metric.Int64ObservableCounter
}

func newInstruments(m metric.Meter) (*instruments, error) {
	in := &instruments{meter: m}
	var errs []error
	counter := func(dst *metric.Int64Counter, name, unit, desc string) {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		*dst = c
	}
	gauge := func(dst *metric.Int64ObservableGauge, name, unit, desc string) {
		g, err := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		*dst = g
	}
	ocounter := func(dst *metric.Int64ObservableCounter, name, unit, desc string) {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		*dst = c
	}
	ocounter(&in.enqueued, "plba.task.enqueued", "{task}", "Tasks handed to a queue backend, by queue, kind and outcome (ok: stored, duplicate: dropped for a key another task holds, or stored already, error).")
	ocounter(&in.processed, "plba.task.processed", "{delivery}", "Settled deliveries, by queue, kind and outcome (succeeded, retried, dead_lettered, returned).")
	ocounter(&in.failed, "plba.task.failed", "{delivery}", "Deliveries whose handler failed or that were dead-lettered, by queue, kind and outcome.")
	ocounter(&in.retried, "plba.task.retried", "{delivery}", "Deliveries scheduled for another attempt, by queue and kind.")
	ocounter(&in.deadLettered, "plba.task.dead_lettered", "{task}", "Tasks moved to the dead letter (by a pool, or by the backend on its own), by queue and kind.")
	counter(&in.sourceEmitted, "plba.source.emitted", "{task}", "Tasks emitted by a source, by source.")
	counter(&in.sourceErrors, "plba.source.errors", "{error}", "Failed source polls, by source.")
	gauge(&in.depth, "plba.queue.depth", "{task}", "Tasks ready for delivery, by queue.")
	gauge(&in.inFlight, "plba.queue.in_flight", "{task}", "Tasks leased and not yet settled, by queue.")
	gauge(&in.delayed, "plba.queue.delayed", "{task}", "Tasks waiting for their not-before time (retries, scheduled), by queue.")
	gauge(&in.dead, "plba.queue.dead", "{task}", "Tasks in the dead letter, by queue.")
	gauge(&in.poolSize, "plba.pool.size", "{worker}", "Workers of a pool (its concurrency), by queue.")
	gauge(&in.poolBusy, "plba.pool.busy", "{worker}", "Workers running a handler, by queue.")
	ocounter(&in.deadDiscarded, "plba.queue.dead_discarded", "{task}", "Dead letters the backend discarded at its dead-letter bound, by queue.")
	ocounter(&in.keysForgotten, "plba.queue.finished_keys_forgotten", "{key}", "Finished tasks' keys the backend forgot at its bound before their de-duplication window ended (a copy enqueued within the window was stored), by queue.")
	ocounter(&in.settleFailed, "plba.task.settle_failed", "{delivery}", "Settlements (ack, retry, dead_letter, release) the backend refused or did not answer, by queue and op.")
	ocounter(&in.completionFailed, "plba.task.completion_failed", "{task}", "Completions a source failed after the settlement, and outcomes the backend found that the runtime stopped before telling, by queue.")
	ocounter(&in.spansDropped, "plba.telemetry.spans_dropped", "{span}", "Sampled spans the trace export lost, by reason (queue_full: the export buffer was full, the exporter down or slow; export_failed: the exporter refused the batch).")
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("telemetry: create instruments: %w", err)
	}
	return in, nil
}

// QueueStatser reports the counts of every queue; the host feeds it from
// the queue backend (queue.Backend's Queues and Stats). It is called on
// each metric collection (each scrape), so it should be cheap.
type QueueStatser interface {
	QueueStats(ctx context.Context) ([]queue.Stats, error)
}

// QueueStatserFunc adapts a function to QueueStatser.
type QueueStatserFunc func(ctx context.Context) ([]queue.Stats, error)

// QueueStats calls f.
func (f QueueStatserFunc) QueueStats(ctx context.Context) ([]queue.Stats, error) { return f(ctx) }

// BackendStats returns a QueueStatser over a backend: the stats of every
// queue it lists. A queue whose stats fail is left out, the others are
// returned with the error (the first, and how many failed).
func BackendStats(b interface {
	Queues(ctx context.Context) ([]string, error)
	Stats(ctx context.Context, queue string) (queue.Stats, error)
}) QueueStatser {
	return QueueStatserFunc(func(ctx context.Context) ([]queue.Stats, error) {
		names, err := b.Queues(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: list queues: %w", err)
		}
		out := make([]queue.Stats, 0, len(names))
		var first error
		failed := 0
		for _, n := range names {
			s, err := b.Stats(ctx, n)
			if err != nil {
				if failed++; first == nil {
					first = fmt.Errorf("telemetry: stats of queue %q: %w", n, err)
				}
				continue
			}
			if s.Queue == "" {
				s.Queue = n
			}
			out = append(out, s)
		}
		if failed > 1 {
			return out, fmt.Errorf("%w (and %d more queues)", first, failed-1)
		}
		return out, first
	})
}

// PoolStats is the state of one worker pool.
type PoolStats struct {
	// Queue is the queue the pool works on.
	Queue string
	// Size is the pool's current concurrency.
	Size int
	// Busy is how many of its workers run a handler now.
	Busy int
	// SettleFailed counts the pool's failed settlements by operation
	// ("ack", "retry", "dead_letter", "release"), since it started.
	SettleFailed map[string]int64
	// CompletionFailed counts the completions its tasks' sources failed,
	// and the outcomes the backend found on its own that the runtime
	// stopped before telling, since it started.
	CompletionFailed int64
}

// PoolStatser reports the state of every worker pool; the host feeds it
// from the worker runtime. Called on each metric collection.
type PoolStatser interface {
	PoolStats() []PoolStats
}

// PoolStatserFunc adapts a function to PoolStatser.
type PoolStatserFunc func() []PoolStats

// PoolStats calls f.
func (f PoolStatserFunc) PoolStats() []PoolStats { return f() }

// observeTasks registers the task counters' callback over the label
// cache: every label set's non-zero counts.
func (in *instruments) observeTasks(c *labelCache) (metric.Registration, error) {
	reg, err := in.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		m := c.m.Load()
		if m == nil {
			return nil
		}
		insts := [...]metric.Int64ObservableCounter{in.enqueued, in.processed, in.failed, in.retried, in.deadLettered}
		for k, ls := range *m {
			if k != ls.key {
				continue // an alias of the kind="_other" set
			}
			for i, inst := range insts {
				if v := ls.counts[i].Load(); v > 0 {
					o.ObserveInt64(inst, v, ls.obs...)
				}
			}
		}
		return nil
	}, in.enqueued, in.processed, in.failed, in.retried, in.deadLettered)
	if err != nil {
		return nil, fmt.Errorf("telemetry: register task counters: %w", err)
	}
	return reg, nil
}

// MaxQueueSeries bounds the queues the queue gauges and counters name
// (plba.queue.*): queue names are the producers' (a backend lists every
// queue enqueued to), so past the first MaxQueueSeries queues seen, the
// counts of the others are reported summed, as queue="_other".
const MaxQueueSeries = 512

// queueNames are the queues the queue gauges name: the first
// MaxQueueSeries seen, kept for good so that their series go on.
type queueNames struct {
	mu    sync.Mutex
	named map[string]struct{}
}

// admit reports whether queue is named, naming it while there is room.
func (n *queueNames) admit(queue string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.named[queue]; ok {
		return true
	}
	if len(n.named) >= MaxQueueSeries {
		return false
	}
	n.named[queue] = struct{}{}
	return true
}

// observeQueues registers the queue gauges' callback over s.
func (in *instruments) observeQueues(s QueueStatser) (metric.Registration, error) {
	names := &queueNames{named: make(map[string]struct{})}
	reg, err := in.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		stats, err := s.QueueStats(ctx)
		observe := func(st queue.Stats) {
			opt := metric.WithAttributeSet(attribute.NewSet(attrQueue.String(st.Queue)))
			o.ObserveInt64(in.depth, st.Ready, opt)
			o.ObserveInt64(in.inFlight, st.InFlight, opt)
			o.ObserveInt64(in.delayed, st.Delayed, opt)
			o.ObserveInt64(in.dead, st.Dead, opt)
			o.ObserveInt64(in.deadDiscarded, st.DeadDiscarded, opt)
			o.ObserveInt64(in.keysForgotten, st.FinishedKeysForgotten, opt)
		}
		other, others := queue.Stats{Queue: otherKind}, false
		for _, st := range stats {
			if st.Queue != otherKind && names.admit(st.Queue) {
				observe(st)
				continue
			}
			others = true
			other.Ready += st.Ready
			other.InFlight += st.InFlight
			other.Delayed += st.Delayed
			other.Dead += st.Dead
			other.DeadDiscarded += st.DeadDiscarded
			other.FinishedKeysForgotten += st.FinishedKeysForgotten
		}
		if others {
			observe(other)
		}
		if err != nil {
			return fmt.Errorf("telemetry: queue stats: %w", err)
		}
		return nil
	}, in.depth, in.inFlight, in.delayed, in.dead, in.deadDiscarded, in.keysForgotten)
	if err != nil {
		return nil, fmt.Errorf("telemetry: register queue gauges: %w", err)
	}
	return reg, nil
}

// observePools registers the pool gauges' callback over s.
func (in *instruments) observePools(s PoolStatser) (metric.Registration, error) {
	reg, err := in.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, p := range s.PoolStats() {
			opt := metric.WithAttributeSet(attribute.NewSet(attrQueue.String(p.Queue)))
			o.ObserveInt64(in.poolSize, int64(p.Size), opt)
			o.ObserveInt64(in.poolBusy, int64(p.Busy), opt)
			o.ObserveInt64(in.completionFailed, p.CompletionFailed, opt)
			for op, n := range p.SettleFailed {
				o.ObserveInt64(in.settleFailed, n, metric.WithAttributeSet(attribute.NewSet(attrQueue.String(p.Queue), attrOp.String(op))))
			}
		}
		return nil
	}, in.poolSize, in.poolBusy, in.completionFailed, in.settleFailed)
	if err != nil {
		return nil, fmt.Errorf("telemetry: register pool gauges: %w", err)
	}
	return reg, nil
}
