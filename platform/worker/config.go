package worker

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/plba/plba/platform/task"
)

// Defaults of PoolConfig.
const (
	DefaultConcurrency = 8
	// DefaultMinBatchSize is the smallest default BatchSize: a busy pool
	// leases (and wakes its fetcher) once per this many tasks at most.
	DefaultMinBatchSize = 32
	DefaultTaskTimeout  = time.Minute
	DefaultLease        = 30 * time.Second
	DefaultMaxAttempts  = 5
	DefaultDrainTimeout = 10 * time.Second
	DefaultStallAfter   = 5 * time.Minute
	// DefaultUnreachableAfter is how long a pool's backend may fail its
	// probes while a Lease waits before the pool shows degraded.
	DefaultUnreachableAfter = 10 * time.Second

	DefaultBackoffInitial    = time.Second
	DefaultBackoffMax        = 5 * time.Minute
	DefaultBackoffMultiplier = 2.0
	DefaultBackoffJitter     = 0.2
)

// Upper bounds of PoolConfig. A pool allocates its hand-over buffer
// (Concurrency + BatchSize deliveries) and starts Concurrency goroutines
// at once, and one Lease call may return BatchSize tasks with their
// payloads: the bounds keep a mistyped value from exhausting memory. Ten
// thousand workers are far more than one process runs usefully (handlers
// that wait on I/O included), and a batch of ten thousand already
// amortises a lease call to nothing.
const (
	MaxConcurrency = 10_000
	MaxBatchSize   = 10_000
)

// PoolConfig configures the worker pool of one queue. The zero value is
// valid: every zero field takes its documented default.
type PoolConfig struct {
	// Concurrency is how many tasks run at once (the number of workers).
	// 1 to MaxConcurrency (10,000). Default 8.
	Concurrency int `koanf:"concurrency"`
	// TaskTimeout bounds one handler run; the handler's ctx is cancelled
	// when it passes and the attempt fails. A route's Timeout overrides
	// it. Default 1m.
	TaskTimeout time.Duration `koanf:"task_timeout"`
	// Lease is how long a leased task stays invisible to other consumers.
	// While a handler runs the pool extends the lease at about half-life,
	// so long tasks keep theirs. Default 30s.
	Lease time.Duration `koanf:"lease"`
	// BatchSize is how many tasks one Lease call may return. The pool
	// holds at most Concurrency + BatchSize leased deliveries: one per
	// worker plus a hand-over buffer, so that a busy pool leases in
	// batches instead of once per finished task. Buffered deliveries go
	// back to the queue (uncounted, where the backend can Release) on
	// Pause and Stop. A buffered delivery that waited half its lease or
	// more has its lease extended before its handler starts; one whose
	// lease ended before a worker took it is skipped and counted as
	// expired (Stats.Expired): another consumer may hold it already, and
	// the backend delivers it again, as a new attempt. Larger
	// batches cost less per task (fewer Lease calls and wake-ups); smaller
	// ones let several replicas sharing a durable queue split slow work
	// more evenly, since a pool never holds more than Concurrency +
	// BatchSize tasks. 1 to MaxBatchSize (10,000). Default: Concurrency,
	// at least 32.
	BatchSize int `koanf:"batch_size"`
	// MaxAttempts is how many deliveries a failing task gets before it is
	// dead-lettered. A route's MaxAttempts overrides it. Default 5.
	MaxAttempts int `koanf:"max_attempts"`
	// Backoff is the delay between attempts.
	Backoff Backoff `koanf:"backoff"`
	// DrainTimeout is how long Stop lets in-flight tasks finish before
	// their contexts are cancelled and they go back to the queue.
	// Default 10s.
	DrainTimeout time.Duration `koanf:"drain_timeout"`
	// StallAfter is the stalled-pool threshold: work is waiting but
	// nothing finished for longer than this, so the pool reports itself
	// degraded. Default 5m.
	StallAfter time.Duration `koanf:"stall_after"`
	// UnreachableAfter is how long the backend may stay unreachable
	// while the pool's Lease waits before the pool reports itself
	// degraded. A Lease on an empty queue blocks, and it blocks as well
	// on a backend that waits out an outage (JetStream waits for the
	// reconnect): while it waits, the pool probes a backend that is a
	// queue.Prober every UnreachableAfter/2 (at most every 5s), and once
	// its probes failed for UnreachableAfter, with none reaching the
	// queue in between, the pool is degraded with the probe's error
	// (about 1.5 x UnreachableAfter after the outage began, plus the
	// probe's own timeout of 5s when the server does not answer at all).
	// The first probe that reaches the queue again makes it healthy. A
	// slow but answering backend never degrades the pool this way.
	// Default 10s.
	UnreachableAfter time.Duration `koanf:"unreachable_after"`
}

// WithDefaults returns c with every zero field set to its default.
func (c PoolConfig) WithDefaults() PoolConfig {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.TaskTimeout == 0 {
		c.TaskTimeout = DefaultTaskTimeout
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.BatchSize == 0 {
		c.BatchSize = max(c.Concurrency, DefaultMinBatchSize)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	c.Backoff = c.Backoff.WithDefaults()
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.StallAfter == 0 {
		c.StallAfter = DefaultStallAfter
	}
	if c.UnreachableAfter == 0 {
		c.UnreachableAfter = DefaultUnreachableAfter
	}
	return c
}

// Validate reports every invalid field of c, each prefixed with its key,
// for example "concurrency: must be at least 1 (got -3)". Zero values are
// valid (they mean the default).
func (c PoolConfig) Validate() error {
	var errs []error
	if c.Concurrency < 0 || c.Concurrency > MaxConcurrency {
		errs = append(errs, fmt.Errorf("concurrency: must be 1 to %d (got %d)", MaxConcurrency, c.Concurrency))
	}
	if c.TaskTimeout < 0 {
		errs = append(errs, fmt.Errorf("task_timeout: must not be negative (got %s)", c.TaskTimeout))
	}
	if c.Lease < 0 {
		errs = append(errs, fmt.Errorf("lease: must not be negative (got %s)", c.Lease))
	}
	if c.BatchSize < 0 || c.BatchSize > MaxBatchSize {
		errs = append(errs, fmt.Errorf("batch_size: must be 1 to %d (got %d)", MaxBatchSize, c.BatchSize))
	}
	if c.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("max_attempts: must be at least 1 (got %d)", c.MaxAttempts))
	}
	if err := c.Backoff.Validate(); err != nil {
		errs = append(errs, prefixErrors("backoff.", err))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("drain_timeout: must not be negative (got %s)", c.DrainTimeout))
	}
	if c.StallAfter < 0 {
		errs = append(errs, fmt.Errorf("stall_after: must not be negative (got %s)", c.StallAfter))
	}
	if c.UnreachableAfter < 0 {
		errs = append(errs, fmt.Errorf("unreachable_after: must not be negative (got %s)", c.UnreachableAfter))
	}
	return errors.Join(errs...)
}

// Config is the "workers" section: pool settings per queue name. A queue
// without an entry uses the entry "default"; within an entry, zero fields
// fall back to the "default" entry's value and then to the built-in
// defaults. Every queue named here gets a pool even without routes; the
// platform (platform.Module) rejects an entry for a queue no route uses,
// naming it and the known queues, since it is most likely a typo.
type Config map[string]PoolConfig

// DefaultConfig returns the defaults: the "default" entry with every
// field at its default, BatchSize left to derive from Concurrency.
func DefaultConfig() Config {
	d := PoolConfig{}.WithDefaults()
	d.BatchSize = 0 // Concurrency, at least 32: derived once Concurrency is known
	return Config{task.DefaultQueue: d}
}

// WithDefaults returns c with every entry resolved as For resolves it
// (its own fields, the "default" entry's, the built-in defaults), the
// "default" entry included: the effective settings of every pool.
func (c Config) WithDefaults() Config {
	out := make(Config, len(c)+1)
	for n := range c {
		out[n] = c.For(n)
	}
	out[task.DefaultQueue] = c.For(task.DefaultQueue)
	return out
}

// For resolves the pool settings of queue: its own entry, completed from
// the "default" entry, completed from the built-in defaults.
func (c Config) For(queue string) PoolConfig {
	own := c[queue]
	if queue != task.DefaultQueue {
		own = merge(own, c[task.DefaultQueue])
	}
	return own.WithDefaults()
}

// Validate reports every invalid entry, with key paths such as
// "orders.concurrency: must be at least 1 (got -3)".
func (c Config) Validate() error {
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		if n == "" {
			errs = append(errs, errors.New(`"": queue name must not be empty`))
			continue
		}
		if err := c.For(n).Validate(); err != nil {
			errs = append(errs, prefixErrors(n+".", err))
		}
	}
	return errors.Join(errs...)
}

// merge fills the zero fields of c from d.
func merge(c, d PoolConfig) PoolConfig {
	if c.Concurrency == 0 {
		c.Concurrency = d.Concurrency
	}
	if c.TaskTimeout == 0 {
		c.TaskTimeout = d.TaskTimeout
	}
	if c.Lease == 0 {
		c.Lease = d.Lease
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.Backoff.Initial == 0 {
		c.Backoff.Initial = d.Backoff.Initial
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = d.Backoff.Max
	}
	if c.Backoff.Multiplier == 0 {
		c.Backoff.Multiplier = d.Backoff.Multiplier
	}
	if c.Backoff.Jitter == 0 {
		c.Backoff.Jitter = d.Backoff.Jitter
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = d.DrainTimeout
	}
	if c.StallAfter == 0 {
		c.StallAfter = d.StallAfter
	}
	if c.UnreachableAfter == 0 {
		c.UnreachableAfter = d.UnreachableAfter
	}
	return c
}

// prefixErrors prefixes every error joined in err with p.
func prefixErrors(p string, err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			errs = append(errs, prefixErrors(p, e))
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("%s%w", p, err)
}
