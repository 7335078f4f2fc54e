package worker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// partBackend stores every task of a batch but the last, and says so with
// a queue.PartialEnqueueError naming the last, as the JetStream backend's
// EnqueueError does for a task the server refused.
type partBackend struct{ queue.Backend }

type refusedLast struct{ id string }

func (e refusedLast) Error() string               { return "task " + e.id + " refused" }
func (e refusedLast) NotStored(t *task.Task) bool { return t.ID == e.id }

func (b partBackend) Enqueue(ctx context.Context, tasks ...*task.Task) error {
	last := tasks[len(tasks)-1]
	if err := b.Backend.Enqueue(ctx, tasks[:len(tasks)-1]...); err != nil {
		return err
	}
	return refusedLast{id: last.ID}
}

// TestProducerCountsTheStoredTasksOfABatchStoredInPart: an Enqueue that
// stored part of its batch and names the rest (queue.PartialEnqueueError)
// counts what it stored in Enqueued, the admin API's enqueue rate: the
// early return on the error counted none of the batch, though its tasks
// were queued and ran.
func TestProducerCountsTheStoredTasksOfABatchStoredInPart(t *testing.T) {
	t.Parallel()
	rt, err := worker.New(worker.Params{Backend: partBackend{newMemory(t)}})
	require.NoError(t, err)
	p := rt.Producer()
	batch := []*task.Task{{Kind: "k"}, {Kind: "k"}, {Kind: "k"}}
	err = p.Enqueue(context.Background(), batch...)
	var pe queue.PartialEnqueueError
	require.True(t, errors.As(err, &pe), "the error names what was not stored: %v", err)
	require.Equal(t, map[string]int64{task.DefaultQueue: 2}, p.Enqueued())
}
