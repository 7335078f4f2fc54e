package queue

import (
	"context"
	"sync"
)

// PoolOverride is what an operator changed on a worker pool at run time
// (through the admin API), kept beyond a restart when the worker runtime
// has a durable OverrideStore. A zero field changes nothing. It lives
// here, beside the backend port, because a durable backend keeps it
// (the JetStream KV) and backends do not depend on the worker pools.
type PoolOverride struct {
	// Paused keeps the pool paused.
	Paused bool `json:"paused,omitempty"`
	// Size is the number of workers instead of the configured
	// concurrency (0: the configured one).
	Size int `json:"size,omitempty"`
}

// IsZero reports whether o changes nothing.
func (o PoolOverride) IsZero() bool { return !o.Paused && o.Size == 0 }

// OverrideStore keeps the pools' overrides. The worker runtime loads them
// when its pools start and applies them before any pool leases; every
// change through its control methods is applied, then saved (and undone
// on the pool when the save fails). A Save that cannot tell whether it
// stored o returns an error wrapping ErrOutcomeUnknown.
type OverrideStore interface {
	// Load returns every saved override by queue.
	Load(ctx context.Context) (map[string]PoolOverride, error)
	// Save keeps o as queue's override (a zero o deletes it).
	Save(ctx context.Context, queue string, o PoolOverride) error
	// Durable reports whether the overrides outlive the process.
	Durable() bool
}

// MemoryOverrides is an OverrideStore that keeps the overrides in the
// process only (not durable): the default of a worker runtime without a
// store.
type MemoryOverrides struct {
	mu sync.Mutex
	m  map[string]PoolOverride
}

// Load returns a copy of the overrides.
func (s *MemoryOverrides) Load(context.Context) (map[string]PoolOverride, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]PoolOverride, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out, nil
}

// Save keeps o for queue.
func (s *MemoryOverrides) Save(_ context.Context, queue string, o PoolOverride) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]PoolOverride{}
	}
	if o.IsZero() {
		delete(s.m, queue)
	} else {
		s.m[queue] = o
	}
	return nil
}

// Durable is false: the overrides end with the process.
func (*MemoryOverrides) Durable() bool { return false }
