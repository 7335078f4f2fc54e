package worker_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// TestSavedOverridesApplyBeforeStart: a runtime whose store holds a
// pause and a size starts its pool paused at that size (no lease before
// the pause), and clearing the override restores the configuration.
func TestSavedOverridesApplyBeforeStart(t *testing.T) {
	ctx := context.Background()
	store := &queue.MemoryOverrides{}
	require.NoError(t, store.Save(ctx, "default", queue.PoolOverride{Paused: true, Size: 3}))
	b := memory.New(memory.Options{})
	t.Cleanup(func() { _ = b.Close(ctx) })
	ran := make(chan struct{}, 1)
	rt, err := worker.New(worker.Params{Backend: b, Overrides: store, Config: worker.Config{"default": {Concurrency: 1}},
		Routes: []task.Route{{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error { ran <- struct{}{}; return nil })}}})
	require.NoError(t, err)
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "default"}))
	require.NoError(t, rt.Start(ctx))
	t.Cleanup(func() { _ = rt.Stop(ctx) })
	p, _ := rt.Pool("default")
	require.Equal(t, lifecycle.Paused, p.State())
	require.Equal(t, 3, p.Stats().Workers)
	require.Equal(t, &queue.PoolOverride{Paused: true, Size: 3}, p.Stats().Override)
	require.False(t, rt.OverridesDurable())

	o, err := rt.ControlPool(ctx, "default", func(o *queue.PoolOverride) error { *o = queue.PoolOverride{}; return nil })
	require.NoError(t, err)
	require.True(t, o.IsZero())
	<-ran
	require.Equal(t, lifecycle.Running, p.State())
	saved, err := store.Load(ctx)
	require.NoError(t, err)
	require.Empty(t, saved)
	_, err = rt.ControlPool(ctx, "nope", func(*queue.PoolOverride) error { return nil })
	require.ErrorIs(t, err, worker.ErrUnknownPool)
}
