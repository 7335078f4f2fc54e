package memory

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// TestLeaseWithAStaleReadyHint: Lease allocates its deliveries before it
// locks the queue, as many as readyHint says are ready (up to max). A hint
// above what is ready leases what is there, a hint below it leases up to
// max all the same, and either way every task goes out once, as its own
// delivery.
func TestLeaseWithAStaleReadyHint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := New(Options{})
	defer b.Close(ctx)
	enqueue := func(n int) {
		for range n {
			require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q"}))
		}
	}
	q := b.queueFor("q")
	seen := map[string]bool{}
	leaseAll := func(t *testing.T, hint int64, max, want int) {
		t.Helper()
		q.readyHint.Store(hint)
		ds, err := b.Lease(ctx, "q", max, 0)
		require.NoError(t, err)
		require.Len(t, ds, want, "hint %d, max %d", hint, max)
		for _, d := range ds {
			require.False(t, seen[d.Task.ID], "task %s delivered twice", d.Task.ID)
			seen[d.Task.ID] = true
			require.NoError(t, b.Ack(ctx, d))
		}
	}
	for _, c := range []struct {
		ready, max, want int
		hint             int64
	}{
		{ready: 2, hint: 10, max: 10, want: 2},
		{ready: 5, hint: 1, max: 5, want: 5},
		{ready: 5, hint: 0, max: 3, want: 3},
		{ready: 2, hint: 3, max: 1, want: 1},
	} {
		t.Run(fmt.Sprintf("ready=%d,hint=%d,max=%d", c.ready, c.hint, c.max), func(t *testing.T) {
			enqueue(c.ready)
			leaseAll(t, c.hint, c.max, c.want)
			for left := c.ready - c.want; left > 0; left -= min(left, c.max) {
				leaseAll(t, 0, c.max, min(left, c.max))
			}
		})
	}
	require.Len(t, seen, 2+5+5+2)
}
