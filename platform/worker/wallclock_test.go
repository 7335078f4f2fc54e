package worker_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// wallLeases is a memory backend whose deliveries carry their lease end
// as a wall time (no monotonic reading), as a backend that has it from a
// server or a database does; the first one's is at until(its own) when
// until is set.
type wallLeases struct {
	*memory.Backend
	until func(time.Time) time.Time
	once  sync.Once
}

func (b *wallLeases) Lease(ctx context.Context, name string, n int, leaseFor time.Duration) ([]*queue.Delivery, error) {
	ds, err := b.Backend.Lease(ctx, name, n, leaseFor)
	for _, d := range ds {
		d.LeaseUntil = d.LeaseUntil.Round(0)
	}
	if len(ds) > 0 && b.until != nil {
		b.once.Do(func() { ds[0].LeaseUntil = b.until(ds[0].LeaseUntil) })
	}
	return ds, err
}

// TestWallLeaseEndAfterAWallClockStep: a lease end without a monotonic
// reading is a wall time, read against the wall clock now, not against
// the pool's epoch: the wall clock steps (NTP) or runs on while the
// monotonic clock stops (suspend), here by 10s since the pool started.
// A handler that runs past half its lease has it extended on time (it
// runs once, its ack holds); a delivery whose lease ended by the wall
// clock is skipped (Expired) and run when delivered again.
func TestWallLeaseEndAfterAWallClockStep(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		until   func(time.Time) time.Time
		work    time.Duration
		expired int64
	}{
		{"extended on time", nil, 2500 * time.Millisecond, 0},
		{"ended", func(time.Time) time.Time { return time.Now().Round(0).Add(-time.Second) }, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be := &wallLeases{Backend: newMemory(t), until: tc.until}
			cfg := fast
			// A lease of 1s, not 300ms: under the race detector on a loaded
			// machine an extension due at half of 300ms came late and the
			// task ran twice.
			cfg.Concurrency, cfg.BatchSize, cfg.Lease = 1, 1, time.Second
			var runs atomic.Int64
			p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
				Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
					runs.Add(1)
					select {
					case <-time.After(tc.work):
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				})})})
			require.NoError(t, err)
			worker.StepWallClock(p, 10*time.Second)
			require.NoError(t, be.Enqueue(context.Background(), &task.Task{Kind: "k", Queue: "default"}))
			require.NoError(t, p.Start(context.Background()))
			require.Eventually(t, func() bool { return p.Stats().Succeeded == 1 }, 10*time.Second, time.Millisecond)
			require.NoError(t, p.Stop(context.Background()))
			st := p.Stats()
			require.Equal(t, int64(1), runs.Load(), "runs")
			require.Equal(t, tc.expired, st.Expired, "expired")
			require.Zero(t, st.SettleFailed.Ack, "failed acks")
		})
	}
}
