package worker_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// leaseOutage is a memory backend whose Lease fails while down is set:
// a backend the pool cannot reach. Its Probe is memory's own.
type leaseOutage struct {
	*memory.Backend
	down    atomic.Bool
	failed  atomic.Int64 // Lease calls refused
	leasing atomic.Int64 // Lease calls in memory's Lease now
}

func (b *leaseOutage) Lease(ctx context.Context, q string, max int, leaseFor time.Duration) ([]*queue.Delivery, error) {
	if b.down.Load() {
		b.failed.Add(1)
		return nil, errors.New("backend: unreachable")
	}
	b.leasing.Add(1)
	defer b.leasing.Add(-1)
	return b.Backend.Lease(ctx, q, max, leaseFor)
}

// startOutagePool starts a pool of queue "q" on out, whose Lease fails from
// the start, waits until it is degraded and returns its component.
func startOutagePool(t *testing.T, out *leaseOutage, ran chan<- string) *lifecycle.Component {
	t.Helper()
	reg := lifecycle.NewRegistry(nil, nil)
	router, err := worker.NewRouter([]task.Route{{Kind: "k", Queue: "q", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		ran <- tk.ID
		return nil
	})}})
	require.NoError(t, err)
	p, err := worker.NewPool(worker.PoolParams{Queue: "q", Backend: out, Router: router, Registry: reg, Config: fast})
	require.NoError(t, err)
	out.down.Store(true)
	require.NoError(t, p.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, p.Stop(context.Background())) })
	comp, ok := reg.Get("pool/q")
	require.True(t, ok)
	require.Eventually(t, func() bool { return comp.State() == lifecycle.Degraded && out.failed.Load() >= 2 },
		10*time.Second, time.Millisecond, "a pool whose Lease fails is degraded")
	require.Contains(t, comp.Status().LastError, "backend: unreachable")
	return comp
}

// A pool degraded by failed leases whose backend recovered shows running
// again while its queue stays empty: its next Lease waits for a task, and
// a probe of the backend (queue.Prober) says the queue is reachable. It
// still works (a task enqueued later runs), and a Lease that fails again
// degrades it again. (Before: it stayed degraded until a Lease returned
// tasks, showing an operator a problem that was gone.)
func TestPoolDegradedByFailedLeasesRunsAgainOnceRecoveredWithAnEmptyQueue(t *testing.T) {
	t.Parallel()
	out := &leaseOutage{Backend: newMemory(t)}
	ran := make(chan string, 1)
	comp := startOutagePool(t, out, ran)

	out.down.Store(false)
	require.Eventually(t, func() bool { return comp.State() == lifecycle.Running }, 15*time.Second, time.Millisecond,
		"a recovered pool with an empty queue shows running")
	st, err := out.Stats(t.Context(), "q")
	require.NoError(t, err)
	require.Zero(t, st.Ready+st.InFlight, "no task came: the probe made it running")

	require.NoError(t, out.Enqueue(t.Context(), &task.Task{ID: "after", Kind: "k", Queue: "q"}))
	require.Equal(t, "after", within(t, ran, "the task enqueued after the recovery"))

	// Down again, once the next Lease waits (one that began after would
	// fail, and the task below would never be leased): the Lease after
	// that task fails, and the pool says so.
	require.Eventually(t, func() bool { return out.leasing.Load() == 1 }, 10*time.Second, time.Millisecond,
		"the next Lease waiting")
	out.down.Store(true)
	require.NoError(t, out.Enqueue(t.Context(), &task.Task{ID: "wake", Kind: "k", Queue: "q"}))
	require.Equal(t, "wake", within(t, ran, "the task that ends the waiting Lease"))
	require.Eventually(t, func() bool { return comp.State() == lifecycle.Degraded }, 10*time.Second, time.Millisecond,
		"a Lease failing again degrades the pool again")
}
