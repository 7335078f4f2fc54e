package plbatest

import (
	"context"
	"sync"
	"time"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
)

// Clock is the kit's time: real time plus an offset that only grows. It
// runs at real speed between jumps, so it is never behind the real clock
// (leases judged against either agree), and it jumps forward when the kit
// skips a wait. Safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the kit's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d (a negative d is ignored: the clock
// never goes back).
func (c *Clock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// Skipped returns how far the clock was moved ahead of real time.
func (c *Clock) Skipped() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// clockBackend is the memory backend as the pools see it: a retry's due
// time, which the pool computes as real now plus the delay, is carried
// over onto the kit's clock, and the delay is recorded for the test.
type clockBackend struct {
	*memory.Backend
	clock *Clock
	rec   *recorder
}

var _ queue.Backend = (*clockBackend)(nil)

// Retry schedules d's task again after the same delay, by the kit's clock.
func (b *clockBackend) Retry(ctx context.Context, d *queue.Delivery, at time.Time) error {
	delay := max(time.Until(at), 0)
	b.rec.retryDelay(d.Task, delay)
	return b.Backend.Retry(ctx, d, b.clock.Now().Add(delay))
}
