package jetstream

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestTwoReplicasDeadLetterEachExhaustedTaskOnce: two replicas of one
// consumer read the advisory stream at the same time. Each exhausted task
// is dead-lettered once (one copy in the dead-letter stream, whichever
// replica got its advisory), every one reaches a watcher, and the queue
// ends empty.
func TestTwoReplicasDeadLetterEachExhaustedTaskOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, err := embedded.Start(ctx, embedded.Config{StoreDir: t.TempDir()}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	cfg := Config{MaxDeliver: 1, AckWait: 500 * time.Millisecond}
	const n = 200

	var mu sync.Mutex
	told := map[string]int{}
	by := map[int]int{}
	backends := make([]*Backend, 2)
	for i := range backends {
		b, err := Open(ctx, Params{Config: cfg, Server: srv})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close(context.Background()) })
		b.WatchDead(func(dl queue.DeadLetter) {
			mu.Lock()
			told[dl.Task.ID]++
			by[i]++
			mu.Unlock()
		})
		backends[i] = b
	}
	tasks := make([]*task.Task, n)
	for i := range tasks {
		tasks[i] = &task.Task{Kind: "k", Queue: "shared", Key: fmt.Sprintf("key-%d", i)}
	}
	require.NoError(t, backends[0].Enqueue(ctx, tasks...))
	// Both replicas lease and never settle: every task is exhausted.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, b := range backends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				lctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				_, _ = b.Lease(lctx, "shared", n, 100*time.Millisecond)
				cancel()
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(told) == n
	}, 60*time.Second, 20*time.Millisecond, "every exhausted task reaches a watcher")
	require.Eventually(t, func() bool {
		st, err := backends[1].Stats(ctx, "shared")
		return err == nil && st.Ready+st.InFlight+st.Delayed == 0
	}, 30*time.Second, 50*time.Millisecond, "the queue empties")
	dead, err := backends[1].ListDead(ctx, "shared", 0)
	require.NoError(t, err)
	ids := map[string]int{}
	for _, dl := range dead {
		ids[dl.Task.ID]++
	}
	require.Len(t, dead, n, "one dead letter per exhausted task")
	require.Len(t, ids, n)
	for _, tk := range tasks {
		require.Equal(t, 1, ids[tk.ID], "task %s dead-lettered once", tk.ID)
	}
	mu.Lock()
	t.Logf("advisories handled: replica 0 %d, replica 1 %d; told %d times for %d tasks", by[0], by[1], by[0]+by[1], n)
	mu.Unlock()
}
