package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// TestHandlerThatIgnoresItsTimeoutLosesItsLease: a handler that runs past
// its timeout and ignores the cancellation of its context keeps its
// worker (nothing can stop a goroutine), but not its task for ever: the
// pool stops extending the lease one lease period after the timeout, so
// the backend delivers the task again (another attempt, on another worker
// or host) and its max attempts still bound a task that hangs every time.
// Before, the housekeeper extended the lease as long as the handler ran:
// the task was held, undelivered, for as long as the handler hung.
func TestHandlerThatIgnoresItsTimeoutLosesItsLease(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	attempts := make(chan int, 4)
	cfg := fast
	cfg.Concurrency = 2
	cfg.Lease = 200 * time.Millisecond
	b := setup(t, cfg, task.Route{Kind: "k", Timeout: 100 * time.Millisecond, Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		attempts <- tk.Attempt
		if tk.Attempt == 1 {
			<-hang // ignores its context
		}
		return nil
	})})
	t.Cleanup(func() { close(hang) }) // before the pool stops (cleanups run last first)
	b.enqueue(t, &task.Task{Kind: "k"})
	require.Equal(t, 1, <-attempts)
	select {
	case a := <-attempts:
		require.Equal(t, 2, a)
	case <-time.After(5 * time.Second):
		t.Fatal("the task of a handler hung past its timeout was never delivered again")
	}
	p := b.pool(t, "default")
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 1 }, 5*time.Second, 5*time.Millisecond, "stats %+v", p.Stats())
}
