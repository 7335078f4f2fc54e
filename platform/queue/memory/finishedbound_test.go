package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// The keys a queue remembers after their task finished are bounded by
// Options.MaxFinishedKeys: a flood of unique keys forgets the oldest
// before their window ends, and the newest are still refused.
func TestFinishedKeysAreBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const max, n = 10, 25
	b := newBackend(t, memoryOptions(time.Hour, max))
	for i := range n {
		require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q", Key: fmt.Sprintf("key-%d", i)}))
	}
	for _, d := range lease(t, b, n) {
		require.NoError(t, b.Ack(ctx, d))
	}
	for i := range n {
		again := &task.Task{Kind: "k", Queue: "q", Key: fmt.Sprintf("key-%d", i)}
		require.NoError(t, b.Enqueue(ctx, again))
		o, _, finished := task.Finished(again)
		if i < n-max {
			require.False(t, finished, "key-%d is beyond the bound: forgotten, stored again", i)
		} else {
			require.True(t, finished, "key-%d is among the %d newest: still refused", i, max)
			require.Equal(t, task.Succeeded, o)
		}
	}
}

func memoryOptions(window time.Duration, maxFinished int) memory.Options {
	return memory.Options{DedupWindow: window, MaxFinishedKeys: maxFinished}
}

// The bound is kept apart for producers' keys and generated ones: a
// flood of keyless tasks finishing (more than the bound) forgets the
// oldest generated keys, never a producer's key whose window still runs.
// Sharing one bound, about 830 keyless tasks a second on a queue pushed
// a producer's key out within its 2-minute window, and the key was
// stored again.
func TestKeylessTasksDoNotPushAProducersKeyOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const max = 10
	b := newBackend(t, memoryOptions(time.Hour, max))
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q", Key: "order-1"}))
	for _, d := range lease(t, b, 1) {
		require.NoError(t, b.Ack(ctx, d))
	}
	for range 3 {
		flood := make([]*task.Task, max)
		for i := range flood {
			flood[i] = &task.Task{Kind: "k", Queue: "q"}
		}
		require.NoError(t, b.Enqueue(ctx, flood...))
		for _, d := range lease(t, b, max) {
			require.NoError(t, b.Ack(ctx, d))
		}
	}
	again := &task.Task{Kind: "k", Queue: "q", Key: "order-1"}
	require.NoError(t, b.Enqueue(ctx, again))
	o, _, finished := task.Finished(again)
	require.True(t, finished, "a producer's key within its window is still refused")
	require.Equal(t, task.Succeeded, o)
}
