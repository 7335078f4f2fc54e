package telemetry

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/plba/plba/platform/task"
)

// Metric attribute names (see the METRICS section of the package doc).
const (
	attrQueue   = attribute.Key("queue")
	attrKind    = attribute.Key("kind")
	attrOutcome = attribute.Key("outcome")
	attrSource  = attribute.Key("source")
	attrOp      = attribute.Key("op")
	attrReason  = attribute.Key("reason")
)

// maxLabelSets bounds the label cache: a flood of distinct kinds or
// queues (a producer enqueuing garbage) must not grow memory or metric
// cardinality without bound. Past it, new combinations share
// kind="_other"; past maxOtherQueues more, queue="_other" as well (their
// spans are named "_other publish" and "_other process" then; the
// attribute messaging.destination.name keeps the queue).
const maxLabelSets = 4096

// otherKind replaces the kind of label sets created past maxLabelSets.
const otherKind = "_other"

// maxOtherQueues bounds the queues that get a kind="_other" set of their
// own past maxLabelSets; past both bounds the queue is "_other" too, so
// that new queue names (a producer enqueuing on names taken from outside
// input) do not grow the cache either.
const maxOtherQueues = 256

// labelKey identifies one cached label set.
type labelKey struct {
	queue, kind string
	outcome     task.Outcome
}

// labelSet is everything the hot path needs for one (queue, kind,
// outcome): the prebuilt attribute set and span names, its counters and
// histograms, so that no attribute slice, set or string is built per task.
type labelSet struct {
	attrs       attribute.Set
	obs         []metric.ObserveOption
	publishName string
	processName string

	// counts are the task counters of this label set (countEnqueued...),
	// reported by the callback observeTasks registers.
	counts [5]atomic.Int64
	// duration (sets with a delivery outcome) and wait (outcome "") are
	// the task histograms, reported by histProducer.
	duration, wait histogram

	key labelKey
	// tp is the observer's tracer provider (a delivery's, see
	// delivery.TracerProvider).
	tp trace.TracerProvider
	// outs caches the sets of the same queue and kind per outcome of a
	// delivery (outcomeIndex), for Finished.
	outs [4]atomic.Pointer[labelSet]
}

// Indexes of labelSet.counts, in the order observeTasks reports them.
const (
	countEnqueued = iota
	countProcessed
	countFailed
	countRetried
	countDeadLettered
)

// outcomeIndex numbers the delivery outcomes labelSet.outs caches.
func outcomeIndex(o task.Outcome) int {
	switch o {
	case task.Succeeded:
		return 0
	case task.Retried:
		return 1
	case task.DeadLettered:
		return 2
	case task.Returned:
		return 3
	}
	return -1
}

// withOutcome returns the set of ls's queue and kind with outcome o,
// without a map lookup once seen.
func (ls *labelSet) withOutcome(c *labelCache, o task.Outcome) *labelSet {
	i := outcomeIndex(o)
	if i < 0 {
		return c.get(ls.key.queue, ls.key.kind, o)
	}
	if r := ls.outs[i].Load(); r != nil {
		return r
	}
	r := c.get(ls.key.queue, ls.key.kind, o)
	ls.outs[i].Store(r)
	return r
}

// labelCache is a copy-on-write map: lookups are a single atomic load and
// a map read (no lock, no allocation); misses copy the map under a mutex.
type labelCache struct {
	m  atomic.Pointer[map[labelKey]*labelSet]
	mu sync.Mutex
	// tp is the observer's tracer provider, given to every set.
	tp trace.TracerProvider
	// started is the set the last getStarted returned: deliveries of one
	// queue and kind in a row find it without hashing the key.
	started atomic.Pointer[labelSet]
}

// getStarted is get with outcome "" for Starting, through the one-entry
// cache started (written only when the queue or kind changes).
func (c *labelCache) getStarted(queue, kind string) *labelSet {
	if ls := c.started.Load(); ls != nil && ls.key.queue == queue && ls.key.kind == kind {
		return ls
	}
	ls := c.get(queue, kind, "")
	c.started.Store(ls)
	return ls
}

// getLast is get with a one-entry cache: prev when it has the same
// labels (the tasks of a batch usually do).
func (c *labelCache) getLast(prev *labelSet, queue, kind string, o task.Outcome) *labelSet {
	if prev != nil && prev.key.outcome == o && prev.key.queue == queue && prev.key.kind == kind {
		return prev
	}
	return c.get(queue, kind, o)
}

func (c *labelCache) get(queue, kind string, o task.Outcome) *labelSet {
	k := labelKey{queue: queue, kind: kind, outcome: o}
	if m := c.m.Load(); m != nil {
		if ls, ok := (*m)[k]; ok {
			return ls
		}
	}
	return c.slow(k)
}

func (c *labelCache) slow(k labelKey) *labelSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if ls, ok := (*old)[k]; ok {
			return ls
		}
	}
	n := 0
	if old != nil {
		n = len(*old)
	}
	orig := k
	if n >= maxLabelSets {
		k.kind = otherKind
		if ls, ok := (*old)[k]; ok {
			return ls
		}
		if n >= maxLabelSets+maxOtherQueues {
			k.queue = otherKind
			if ls, ok := (*old)[k]; ok {
				return ls
			}
		}
	}
	attrs := make([]attribute.KeyValue, 0, 3)
	attrs = append(attrs, attrQueue.String(k.queue), attrKind.String(k.kind))
	if k.outcome != "" {
		attrs = append(attrs, attrOutcome.String(string(k.outcome)))
	}
	set := attribute.NewSet(attrs...)
	ls := &labelSet{
		attrs:       set,
		obs:         []metric.ObserveOption{metric.WithAttributeSet(set)},
		key:         k,
		tp:          c.tp,
		publishName: spanName(k.queue, "publish"),
		processName: spanName(k.queue, "process"),
	}
	m := make(map[labelKey]*labelSet, n+1)
	if old != nil {
		for kk, v := range *old {
			m[kk] = v
		}
	}
	m[k] = ls
	if orig != k && n < maxLabelSets {
		m[orig] = ls
	}
	c.m.Store(&m)
	return ls
}

func spanName(queue, op string) string {
	if queue == "" {
		return op
	}
	return queue + " " + op
}

// sourceCache caches the attribute options per source name, copy-on-write
// like labelCache.
type sourceCache struct {
	m  atomic.Pointer[map[string][]metric.AddOption]
	mu sync.Mutex
}

func (c *sourceCache) get(source string) []metric.AddOption {
	if m := c.m.Load(); m != nil {
		if o, ok := (*m)[source]; ok {
			return o
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if o, ok := (*old)[source]; ok {
			return o
		}
	}
	o := []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attrSource.String(source)))}
	if old != nil && len(*old) >= maxLabelSets {
		return o // do not cache past the bound; still correct, just slower
	}
	m := make(map[string][]metric.AddOption)
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	m[source] = o
	c.m.Store(&m)
	return o
}
