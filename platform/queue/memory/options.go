package memory

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Defaults applied by Options.WithDefaults.
const (
	// DefaultCapacity is the per-queue capacity used when Options.Capacity
	// is zero.
	DefaultCapacity = 10_000
	// DefaultLease is the lease used when Lease is called with a
	// non-positive duration and Options.DefaultLease is zero.
	DefaultLease = 30 * time.Second
	// DefaultMaxDead is the per-queue dead-letter bound used when
	// Options.MaxDead is zero.
	DefaultMaxDead = 10_000
	// DefaultDedupWindow is the host's default Options.DedupWindow
	// (queue.memory.dedup_window), as long as the JetStream backend's
	// default de-duplication window. The zero Options keep a key only
	// while its task is live.
	DefaultDedupWindow = 2 * time.Minute
	// DefaultMaxFinishedKeys is the per-queue bound on the keys
	// remembered after their task finished used when
	// Options.MaxFinishedKeys is zero.
	DefaultMaxFinishedKeys = 100_000
)

// Options configure a Backend. The zero value is ready to use: bounded
// queues of DefaultCapacity that block producers when full, at most
// DefaultMaxDead dead letters per queue, keys de-duplicated while their
// task is live (the host's default keeps them DefaultDedupWindow longer),
// no max-deliveries limit.
type Options struct {
	// Capacity bounds each queue: ready + delayed + in-flight tasks (dead
	// letters do not count). Zero means DefaultCapacity (10,000).
	Capacity int `koanf:"capacity"`
	// MaxDead bounds the dead letters kept per queue. A dead letter made
	// when a queue already holds MaxDead of them discards the oldest one
	// (its key is then remembered for DedupWindow, as after a purge):
	// counted in queue.Stats.DeadDiscarded and logged (at most once a
	// minute per queue, with the count). Zero means DefaultMaxDead
	// (10,000).
	MaxDead int `koanf:"max_dead"`
	// FailFast makes Enqueue return queue.ErrFull at once when a queue is
	// full. When false (the default) Enqueue blocks until there is room or
	// its context ends.
	FailFast bool `koanf:"fail_fast"`
	// DedupWindow is how long a task's key keeps being refused after the
	// task was acked or purged, a key its producer gave (a generated key,
	// task.KeyGenerated, only while its task is live). Keys are always
	// refused while their task is live (ready, delayed, in flight or dead). Zero means only while
	// live; the host's default (queue.memory.dedup_window) is
	// DefaultDedupWindow.
	DedupWindow time.Duration `koanf:"dedup_window"`
	// MaxFinishedKeys bounds the keys each queue remembers after their
	// task finished (with DedupWindow; producers' keys only: a generated
	// key, task.KeyGenerated, is not remembered after its task): one more
	// forgets the oldest of them at once, before its window ends, so that
	// a flood of unique keys costs bounded memory: about 300 bytes a key
	// of 18 bytes, some 30 MB a queue at the default bound. A key so
	// forgotten before its window ended is counted
	// (queue.Stats.FinishedKeysForgotten) and logged (at most once a
	// minute per queue, with the count): a copy of its task enqueued
	// within the window is stored and runs again.
	// Zero means DefaultMaxFinishedKeys (100,000).
	MaxFinishedKeys int `koanf:"max_finished_keys"`
	// MaxDeliveries is a safety net for tasks that hang or crash their
	// consumer: a task whose lease expired this many times is dead-lettered
	// with the reason "lease expired N times". Zero (the default) means off.
	MaxDeliveries int `koanf:"max_deliveries"`
	// DefaultLease is the lease Lease uses when called with leaseFor <= 0.
	// Zero means DefaultLease (30s).
	DefaultLease time.Duration `koanf:"default_lease"`
	// Logger receives the warnings about discarded dead letters and keys
	// forgotten early; nil discards them (the counts are still in Stats).
	Logger *zap.Logger `koanf:"-"`
	// Now replaces time.Now, for tests. Due times (retries, NotBefore,
	// leases, the de-duplication window) are judged by it whenever a call
	// looks at a queue; blocked Lease calls are woken by a real timer set
	// to the due time as Now saw it. Nil means time.Now.
	Now func() time.Time `koanf:"-"`
}

// WithDefaults returns o with zero fields replaced by their defaults (and
// negative values, which Validate rejects, by the defaults as well).
func (o Options) WithDefaults() Options {
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	if o.MaxDead <= 0 {
		o.MaxDead = DefaultMaxDead
	}
	if o.DedupWindow < 0 {
		o.DedupWindow = 0
	}
	if o.MaxFinishedKeys <= 0 {
		o.MaxFinishedKeys = DefaultMaxFinishedKeys
	}
	if o.MaxDeliveries < 0 {
		o.MaxDeliveries = 0
	}
	if o.DefaultLease <= 0 {
		o.DefaultLease = DefaultLease
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

// Validate reports options that make no sense (negative values), each
// as "key: problem".
func (o Options) Validate() error {
	var errs []error
	if o.Capacity < 0 {
		errs = append(errs, fmt.Errorf("capacity: must not be negative (got %d)", o.Capacity))
	}
	if o.MaxDead < 0 {
		errs = append(errs, fmt.Errorf("max_dead: must not be negative (got %d)", o.MaxDead))
	}
	if o.DedupWindow < 0 {
		errs = append(errs, fmt.Errorf("dedup_window: must not be negative (got %s)", o.DedupWindow))
	}
	if o.MaxFinishedKeys < 0 {
		errs = append(errs, fmt.Errorf("max_finished_keys: must not be negative (got %d)", o.MaxFinishedKeys))
	}
	if o.MaxDeliveries < 0 {
		errs = append(errs, fmt.Errorf("max_deliveries: must not be negative (got %d)", o.MaxDeliveries))
	}
	if o.DefaultLease < 0 {
		errs = append(errs, fmt.Errorf("default_lease: must not be negative (got %s)", o.DefaultLease))
	}
	// Joined as they are, each "key: problem", so that a configuration
	// reports each at its own key (queue.memory.capacity).
	return errors.Join(errs...)
}
