package worker_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// TestProducerCountsWhatWasStored: Enqueued (the admin API's enqueue rate)
// counts the tasks the backend stored, not the duplicates it dropped
// (marked task.Held or task.Finished). A source emitting again tasks that
// were queued or done already showed as enqueuing at full speed while
// nothing reached the queue.
func TestProducerCountsWhatWasStored(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	rt, err := worker.New(worker.Params{Backend: be})
	require.NoError(t, err)
	ctx := context.Background()
	p := rt.Producer()
	first := &task.Task{Kind: "k", Key: "order-1"}
	require.NoError(t, p.Enqueue(ctx, first))
	held := &task.Task{Kind: "k", Key: "order-1"}
	other := &task.Task{Kind: "k", Key: "order-2"}
	require.NoError(t, p.Enqueue(ctx, held, other))
	_, isHeld := task.Held(held)
	require.True(t, isHeld, "the backend dropped the duplicate")
	require.Equal(t, map[string]int64{task.DefaultQueue: 2}, p.Enqueued())
}
