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

// leaseUntilAt is a memory backend whose first delivery reports the
// lease end until instead of the one granted.
type leaseUntilAt struct {
	*memory.Backend
	until time.Time
	once  sync.Once
}

func (b *leaseUntilAt) Lease(ctx context.Context, name string, n int, leaseFor time.Duration) ([]*queue.Delivery, error) {
	ds, err := b.Backend.Lease(ctx, name, n, leaseFor)
	if len(ds) > 0 {
		b.once.Do(func() { ds[0].LeaseUntil = b.until })
	}
	return ds, err
}

// TestLeaseEndFarFromThePoolsClock: the pool reads a delivery's lease end
// on its own clock (the time since its epoch). One centuries before the
// epoch, beyond what a time.Duration holds, is a lease that ended: the
// delivery is skipped, and run when the backend delivers it again. One
// centuries ahead, without a monotonic reading, is a lease that holds:
// the delivery runs at once.
func TestLeaseEndFarFromThePoolsClock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		until   time.Time
		expired int64
	}{
		{"past", time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), 1},
		{"future", time.Now().AddDate(500, 0, 0).Round(0), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be := &leaseUntilAt{Backend: newMemory(t), until: tc.until}
			cfg := fast
			cfg.Concurrency, cfg.BatchSize, cfg.Lease = 1, 1, 300*time.Millisecond
			var runs atomic.Int64
			p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
				Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
					runs.Add(1)
					return nil
				})})})
			require.NoError(t, err)
			require.NoError(t, be.Enqueue(context.Background(), &task.Task{Kind: "k", Queue: "default"}))
			require.NoError(t, p.Start(context.Background()))
			require.Eventually(t, func() bool { return p.Stats().Succeeded == 1 }, 10*time.Second, time.Millisecond)
			require.NoError(t, p.Stop(context.Background()))
			require.Equal(t, int64(1), runs.Load())
			require.Equal(t, tc.expired, p.Stats().Expired)
		})
	}
}
