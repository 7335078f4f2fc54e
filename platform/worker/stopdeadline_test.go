package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// releaseGated is a memory backend whose Release waits for gate,
// ignoring its context.
type releaseGated struct {
	*memory.Backend
	gate chan struct{}
}

func (b releaseGated) Release(ctx context.Context, d *queue.Delivery) error {
	<-b.gate
	return b.Backend.Release(context.WithoutCancel(ctx), d)
}

// TestStopReturnsByAShortDeadline: Stop with a deadline closer than its
// margin and graces need (here 40ms) returns by that deadline, also when
// it has to give back the delivery of a handler that ignores its
// cancellation and the backend is slow to take it back: the give-back
// goes on and Stop's error names it. Stop used to wait its grace and the
// give-backs' two graces past its shortened ctx (at least 170ms here).
func TestStopReturnsByAShortDeadline(t *testing.T) {
	t.Parallel()
	be := releaseGated{newMemory(t), make(chan struct{})}
	started, stuck := make(chan struct{}), make(chan struct{})
	cfg := fast
	cfg.Concurrency, cfg.DrainTimeout = 1, time.Minute
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			close(started)
			<-stuck // ignores its cancellation
			return nil
		})})})
	require.NoError(t, err)
	unblock := sync.OnceFunc(func() { close(be.gate); close(stuck) })
	t.Cleanup(unblock) // also when an assertion below fails
	require.NoError(t, be.Enqueue(context.Background(), &task.Task{Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(context.Background()))
	within(t, started, "the handler")

	const deadline = 40 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	begun := time.Now()
	err = p.Stop(ctx)
	took := time.Since(begun)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "1 handlers that ignore cancellation")
	require.Less(t, took, deadline+100*time.Millisecond, "Stop returns by its deadline (it took %s)", took)

	unblock()
	require.NoError(t, p.Stop(context.Background()))
	st := p.Stats()
	require.Equal(t, int64(1), st.Returned, "the give-back went on after Stop returned")
	require.Zero(t, st.Succeeded, "never acked")
}
