package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// gatedRelease holds the give-backs of tasks with payload "buffered"
// until gate is closed, counting those in progress.
type gatedRelease struct {
	queue.Backend
	gate      chan struct{}
	releasing atomic.Int64
}

func (b *gatedRelease) Release(ctx context.Context, d *queue.Delivery) error {
	if string(d.Task.Payload) == "buffered" {
		b.releasing.Add(1)
		defer b.releasing.Add(-1)
		<-b.gate
	}
	return b.Backend.Release(ctx, d)
}

// TestStopWaitsForThePausesGiveBacks: a Pause gives the hand-over buffer
// back in its caller's goroutine; a Stop that begins meanwhile returns
// only once those deliveries are back in the queue. Stop returned nil
// while they were still being given back (leased in the backend, which
// the host closes next: a delivery whose give-back the closing backend
// then refuses comes back only when its lease ends, as a new attempt).
func TestStopWaitsForThePausesGiveBacks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := newMemory(t)
	be := &gatedRelease{Backend: mem, gate: make(chan struct{})}
	cfg := fast
	cfg.Concurrency, cfg.BatchSize = 1, 3
	started, proceed := make(chan struct{}, 1), make(chan struct{})
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			started <- struct{}{}
			<-proceed
			return nil
		})})})
	require.NoError(t, err)
	require.NoError(t, mem.Enqueue(ctx, &task.Task{Kind: "k", Queue: "default", Payload: []byte("runs")}))
	for range 3 {
		require.NoError(t, mem.Enqueue(ctx, &task.Task{Kind: "k", Queue: "default", Payload: []byte("buffered")}))
	}
	require.NoError(t, p.Start(ctx))
	within(t, started, "the first handler")
	require.Eventually(t, func() bool {
		st, err := mem.Stats(ctx, "default")
		return err == nil && st.InFlight == 4
	}, 10*time.Second, time.Millisecond, "one running, three in the hand-over buffer")

	paused := make(chan struct{})
	go func() { defer close(paused); p.Pause() }()
	require.Eventually(t, func() bool { return be.releasing.Load() == 3 }, 10*time.Second, time.Millisecond,
		"the pause gives the buffer back")
	close(proceed)
	stopped := make(chan error, 1)
	go func() { stopped <- p.Stop(ctx) }()
	select {
	case err := <-stopped:
		n := be.releasing.Load()
		close(be.gate)
		<-paused
		t.Fatalf("Stop returned (%v) with %d give-backs of the pause in progress", err, n)
	case <-time.After(300 * time.Millisecond):
		// Stop waits for them: let them through.
	}
	close(be.gate)
	require.NoError(t, within(t, stopped, "Stop"))
	<-paused
	st, err := mem.Stats(ctx, "default")
	require.NoError(t, err)
	require.Zero(t, st.InFlight, "everything the pool leased is settled or back")
	require.Equal(t, int64(3), st.Ready)
	ps := p.Stats()
	require.Equal(t, int64(3), ps.Returned)
	require.Equal(t, int64(1), ps.Succeeded)
}
