package worker_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// probeOutage is a memory backend whose Probe fails while down is set,
// and whose Lease only waits meanwhile, as a JetStream Lease waits for
// the reconnect: a backend gone away while the pool waited for work.
type probeOutage struct {
	*memory.Backend
	down atomic.Bool
}

func (b *probeOutage) Probe(ctx context.Context, q string) error {
	if b.down.Load() {
		return errors.New("backend: connection reconnecting")
	}
	return b.Backend.Probe(ctx, q)
}

// A pool whose Lease waits on an empty queue while its backend's probes
// fail shows degraded once they failed for UnreachableAfter, with the
// probe's error, and running once a probe reaches the queue again; paused
// and resumed during the outage it shows running at Resume, and degraded
// again once its probes failed for UnreachableAfter since. (Before the
// watch: it showed running throughout; before the watch started afresh
// after a Resume: running for good after it.)
func TestPoolWhoseProbesFailWhileItsLeaseWaitsShowsDegraded(t *testing.T) {
	t.Parallel()
	be := &probeOutage{Backend: newMemory(t)}
	reg := lifecycle.NewRegistry(nil, nil)
	ran := make(chan string, 1)
	router, err := worker.NewRouter([]task.Route{{Kind: "k", Queue: "q", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		ran <- tk.ID
		return nil
	})}})
	require.NoError(t, err)
	cfg := fast
	cfg.UnreachableAfter = 300 * time.Millisecond
	p, err := worker.NewPool(worker.PoolParams{Queue: "q", Backend: be, Router: router, Registry: reg, Config: cfg})
	require.NoError(t, err)
	require.NoError(t, p.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, p.Stop(context.Background())) })
	comp, ok := reg.Get("pool/q")
	require.True(t, ok)
	stays := func(state lifecycle.State, d time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			require.Equal(t, state, comp.State(), "last error: %s", comp.Status().LastError)
		}
	}
	degraded := func() {
		t.Helper()
		require.Eventually(t, func() bool { return comp.State() == lifecycle.Degraded }, 10*time.Second, time.Millisecond,
			"degraded by its failing probes")
		require.Contains(t, comp.Status().LastError, "backend: connection reconnecting")
		require.Contains(t, p.Stats().LastError, "backend: connection reconnecting")
	}
	stays(lifecycle.Running, time.Second) // idle, its probes answered

	be.down.Store(true)
	degraded()

	p.Pause()
	require.Equal(t, lifecycle.Paused, comp.State())
	p.Resume()
	require.Equal(t, lifecycle.Running, comp.State())
	degraded()

	be.down.Store(false)
	require.Eventually(t, func() bool { return comp.State() == lifecycle.Running }, 10*time.Second, time.Millisecond,
		"running once a probe reached the queue")
	stays(lifecycle.Running, time.Second)
	require.NoError(t, be.Enqueue(t.Context(), &task.Task{ID: "after", Kind: "k", Queue: "q"}))
	require.Equal(t, "after", within(t, ran, "the task enqueued after the recovery"))
}
