package source_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// TestPauseHoldsAnEmitWaitingForRoom: an Emit that waits for room in a
// full queue when its source is paused hands nothing over while the
// source is paused, even once the queue has room: its batch is enqueued
// after Resume, and the source's Emit returns nil then, as for an Emit
// held at the pause. Before, the waiting Enqueue stored the batch as soon
// as room came, the source paused.
func TestPauseHoldsAnEmitWaitingForRoom(t *testing.T) {
	t.Parallel()
	be := memory.New(memory.Options{Capacity: 1})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	ctx := t.Context()
	require.NoError(t, be.Enqueue(ctx, &task.Task{ID: "filler", Kind: "k", Queue: "q"}))
	done := make(chan error, 1)
	src := emitOnce("feed", func(ctx context.Context, e source.Emitter) error {
		return e.Emit(ctx, &task.Task{ID: "a", Kind: "k", Queue: "q"})
	}, done)
	s, err := source.NewSupervisor(source.Config{}, be, lifecycle.NewRegistry(nil, nil), nil, src)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	defer stopSupervisor(t, s)
	time.Sleep(200 * time.Millisecond) // the Emit waits for room (or is yet to come)
	require.NoError(t, s.Pause("feed"))

	ds, err := be.Lease(ctx, "q", 1, time.Minute)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, "filler", ds[0].Task.ID)
	require.NoError(t, be.Ack(ctx, ds[0])) // room for the batch
	time.Sleep(time.Second)
	st, err := be.Stats(ctx, "q")
	require.NoError(t, err)
	require.Zero(t, st.Ready, "a paused source handed a task over")
	select {
	case err := <-done:
		t.Fatalf("Emit returned while its source was paused: %v", err)
	default:
	}
	require.Zero(t, statsOf(t, s).Emitted)

	require.NoError(t, s.Resume("feed"))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Emit did not return after Resume")
	}
	st, err = be.Stats(ctx, "q")
	require.NoError(t, err)
	require.EqualValues(t, 1, st.Ready, "the batch is enqueued after Resume")
	require.EqualValues(t, 1, statsOf(t, s).Emitted)
}
