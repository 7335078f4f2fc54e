package jetstream

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestAdvisoryHandledAgainIsNotToldAgain: a max-deliveries advisory whose
// handling failed after the watcher was told (here the key's marker: the
// handling's time ran out while the watcher took long) is handled again
// by the same process; the watcher is told the dead letter once. It used
// to be told again, and the runtime counted the one dead letter twice
// (plba.task.dead_lettered, the pool's Stats.Dead).
func TestAdvisoryHandledAgainIsNotToldAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const publishTimeout = 300 * time.Millisecond
	b := openTestBackend(t, Config{MaxDeliver: 1, AckWait: 500 * time.Millisecond, PublishTimeout: publishTimeout,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	var mu sync.Mutex
	told := 0
	b.WatchDead(func(queue.DeadLetter) {
		mu.Lock()
		told++
		first := told == 1
		mu.Unlock()
		if first {
			// Outlast the handling's time: what follows the watcher
			// (the key's marker) fails, and the advisory comes back.
			time.Sleep(2 * publishTimeout)
		}
	})
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Kind: "k", Queue: "rt", Key: "key-1"}))
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	ds, err := b.Lease(lctx, "rt", 1, 100*time.Millisecond)
	cancel()
	require.NoError(t, err)
	require.Len(t, ds, 1) // never settled: exhausted after AckWait
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, "rt")
		return err == nil && st.Ready+st.InFlight+st.Delayed == 0 && st.Dead == 1
	}, 30*time.Second, 20*time.Millisecond, "the exhausted task was dead-lettered and left its queue")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, told, "one dead letter, told once")
}
