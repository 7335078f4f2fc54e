package memory_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// TestSameTaskEnqueuedAgainWhileLeased: the very task enqueued again
// while a delivery of it runs is neither stored twice nor marked (see
// queue.Producer), and the backend, which keeps that *task.Task and shares
// its headers with the deliveries, does not write to it: the handler
// reading the delivery's headers meanwhile is no data race (run with
// -race). Enqueue's Task.Prepare used to delete the duplicate marks from
// the stored task's headers even when it carried none, a write to the map
// the handler was reading.
func TestSameTaskEnqueuedAgainWhileLeased(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{})
	ctx := context.Background()
	tk := &task.Task{Kind: "k", Queue: "q", Headers: map[string]string{"x": "1"}}
	require.NoError(t, b.Enqueue(ctx, tk))
	ds, err := b.Lease(ctx, "q", 1, time.Minute)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 1000 {
			_ = ds[0].Task.Header("x")
		}
	})
	for range 100 {
		require.NoError(t, b.Enqueue(ctx, tk))
		require.False(t, task.Dropped(tk), "the same task is not marked")
	}
	wg.Wait()
	st, err := b.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, int64(0), st.Ready)
	require.Equal(t, int64(1), st.InFlight)
	require.Equal(t, "1", ds[0].Task.Header("x"))
	require.NoError(t, b.Ack(ctx, ds[0]))
}
