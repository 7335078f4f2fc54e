package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
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

// TestProducerCountsAStoredTaskEnqueuedAgainOnce: the same task enqueued
// again while it is stored (the very Task, a copy with its ID and key, or
// the very Task twice in one batch) is stored once and counted once. The
// backend does not mark it held or finished (it holds its key itself), and
// Enqueued counted every call as a task stored.
func TestProducerCountsAStoredTaskEnqueuedAgainOnce(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	rt, err := worker.New(worker.Params{Backend: be})
	require.NoError(t, err)
	ctx := context.Background()
	p := rt.Producer()
	first := &task.Task{ID: "order-1", Kind: "k"}
	require.NoError(t, p.Enqueue(ctx, first))
	require.False(t, task.StoredAgain(first), "the first call stored it")
	require.NoError(t, p.Enqueue(ctx, first))
	require.True(t, task.StoredAgain(first), "the very task, enqueued again")
	require.False(t, task.Dropped(first), "it holds its key itself: not held, not finished")
	cp := first.Clone()
	require.NoError(t, p.Enqueue(ctx, cp))
	require.True(t, task.StoredAgain(cp), "a copy with its ID and key")
	twice := &task.Task{ID: "order-2", Kind: "k"}
	require.NoError(t, p.Enqueue(ctx, twice, twice))
	require.False(t, task.StoredAgain(twice), "the batch stored it")
	require.Equal(t, map[string]int64{task.DefaultQueue: 2}, p.Enqueued())
	st, err := be.Stats(ctx, task.DefaultQueue)
	require.NoError(t, err)
	require.Equal(t, int64(2), st.Ready, "what the counter says is what is stored")
	// Stored anew after it was acked (no de-duplication window): counted.
	ds, err := be.Lease(ctx, task.DefaultQueue, 2, time.Minute)
	require.NoError(t, err)
	for _, d := range ds {
		require.NoError(t, be.Ack(ctx, d))
	}
	require.NoError(t, p.Enqueue(ctx, first))
	require.False(t, task.StoredAgain(first), "Prepare cleared the mark; stored anew")
	require.Equal(t, map[string]int64{task.DefaultQueue: 3}, p.Enqueued())
}

// TestProducerFindsTasks: the runtime's producer looks tasks up on its
// backend, so that a source's emitter over it is a queue.TaskFinder: a
// schedule whose emit was given up with its outcome unknown looks the due
// time's key up through it. Before, the producer could not, and under the
// runtime such a due time could never be found stored.
func TestProducerFindsTasks(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	rt, err := worker.New(worker.Params{Backend: be})
	require.NoError(t, err)
	ctx := context.Background()
	p := rt.Producer()
	require.NoError(t, p.Enqueue(ctx, &task.Task{Kind: "k", Key: "order-1"}))

	var f queue.TaskFinder = p
	found, err := f.FindTasks(ctx, task.DefaultQueue, queue.TaskLookup{Key: "order-1"})
	require.NoError(t, err)
	require.Len(t, found.Found, 1)
	require.Equal(t, "order-1", found.Found[0].Task.Key)
	none, err := f.FindTasks(ctx, task.DefaultQueue, queue.TaskLookup{Key: "order-2"})
	require.NoError(t, err)
	require.Empty(t, none.Found)
	_, err = f.FindTasks(ctx, task.DefaultQueue, queue.TaskLookup{})
	require.ErrorIs(t, err, queue.ErrBadLookup)

	sched, err := source.Every("job", time.Hour, "k")
	require.NoError(t, err)
	em := source.NewEmitter(sched, p)
	// An emitter over the producer looks tasks up through it.
	found, err = em.(queue.TaskFinder).FindTasks(ctx, task.DefaultQueue, queue.TaskLookup{Key: "order-1"})
	require.NoError(t, err)
	require.Len(t, found.Found, 1)
}
