package worker_test

import (
	"context"
	"errors"
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

// partialLease is a memory backend whose first Lease that leases
// something returns its deliveries with an error, as a backend may when a
// batch breaks off midway.
type partialLease struct {
	*memory.Backend
	once sync.Once
}

func (b *partialLease) Lease(ctx context.Context, q string, max int, leaseFor time.Duration) ([]*queue.Delivery, error) {
	ds, err := b.Backend.Lease(ctx, q, max, leaseFor)
	if err == nil && len(ds) > 0 {
		b.once.Do(func() { err = errors.New("the rest of the batch was lost") })
	}
	return ds, err
}

// Deliveries a Lease returned beside its error are leased all the same:
// the pool runs them, attempt 1, and keeps its reservations right. Before,
// it dropped them: they ran only once their lease ran out, as attempt 2,
// and the slots reserved for them stayed taken.
func TestDeliveriesLeasedWithAnErrorAreRun(t *testing.T) {
	t.Parallel()
	be := &partialLease{Backend: newMemory(t)}
	cfg := fast
	cfg.Lease = time.Minute
	var ran atomic.Int32
	attempts := make(chan int, 10)
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"default": cfg},
		Routes: []task.Route{{Kind: "k", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
			ran.Add(1)
			attempts <- tk.Attempt
			return nil
		})}}})
	require.NoError(t, err)
	require.NoError(t, rt.Producer().Enqueue(context.Background(), &task.Task{ID: "a", Kind: "k"}, &task.Task{ID: "b", Kind: "k"}))
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, rt.Stop(context.Background())) })
	require.Eventually(t, func() bool { return ran.Load() == 2 }, 10*time.Second, 5*time.Millisecond, "both tasks ran within their lease")
	require.Equal(t, 1, <-attempts)
	require.Equal(t, 1, <-attempts)
	require.Eventually(t, func() bool {
		st, err := be.Stats(context.Background(), "default")
		return err == nil && st.Ready+st.InFlight == 0
	}, 5*time.Second, 5*time.Millisecond)
}
