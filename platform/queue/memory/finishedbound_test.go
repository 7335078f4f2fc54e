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
