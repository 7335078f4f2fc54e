package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// TestResumeBeforeStartRunsTasks: a pool paused and resumed before it
// started (a saved pause, then cleared; Pause and Resume are safe at any
// time) runs its tasks once started. Resume before Start left the pool
// halted: every delivery it leased went straight back to the queue
// (Stats.Returned climbing) and no handler ever ran.
func TestResumeBeforeStartRunsTasks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	be := newMemory(t)
	ran := make(chan struct{}, 1)
	r, err := worker.NewRouter([]task.Route{{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
		ran <- struct{}{}
		return nil
	})}})
	require.NoError(t, err)
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: fast, Backend: be, Router: r,
		Registry: lifecycle.NewRegistry(nil, nil)})
	require.NoError(t, err)
	p.Pause()
	p.Resume()
	require.NoError(t, be.Enqueue(ctx, &task.Task{Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(ctx))
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		require.NoError(t, p.Stop(sctx))
	})
	within(t, ran, "the handler")
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 1 }, 5*time.Second, time.Millisecond)
	require.Zero(t, p.Stats().Returned, "nothing given back: the pool is running, not paused")
}
