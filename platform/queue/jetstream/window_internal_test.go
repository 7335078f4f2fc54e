package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// windowBackend is a backend whose publish window holds n publishes.
func windowBackend(t *testing.T, n int) *Backend {
	t.Helper()
	return openTestBackend(t, Config{AckWait: 5 * time.Second, MaxAsyncPending: n,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
}

func newTasks(queueName string, n int) []*task.Task {
	ts := make([]*task.Task, n)
	for i := range ts {
		ts[i] = &task.Task{Kind: "k", Queue: queueName, Payload: []byte(fmt.Sprint(i))}
	}
	return ts
}

// requireWindowEmpty waits until every token of b's window came back.
func requireWindowEmpty(t *testing.T, b *Backend) {
	t.Helper()
	require.Eventually(t, func() bool { return len(b.window) == 0 }, 5*time.Second, 5*time.Millisecond,
		"publish window tokens not given back: %d", len(b.window))
}

// A full publish window makes Enqueue wait, longer than nats.go's own
// 200 ms stall, without failing; when room comes, every task is stored.
func TestEnqueueWaitsForPublishWindow(t *testing.T) {
	t.Parallel()
	b := windowBackend(t, 2)
	ctx := t.Context()
	require.NoError(t, b.Enqueue(ctx, newTasks("win", 1)...)) // stream and consumer exist
	b.window <- struct{}{}                                    // two publishes in flight elsewhere
	b.window <- struct{}{}

	tasks := newTasks("win", 5)
	done := make(chan error, 1)
	go func() { done <- b.Enqueue(ctx, tasks...) }()
	select {
	case err := <-done:
		t.Fatalf("Enqueue returned with the window full: %v", err)
	case <-time.After(400 * time.Millisecond):
	}
	b.releaseWindow()
	b.releaseWindow()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Enqueue did not finish after the window had room")
	}
	requireWindowEmpty(t, b)
	got := 0
	for got < 6 {
		ds, err := b.Lease(ctx, "win", 10, time.Minute)
		require.NoError(t, err)
		for _, d := range ds {
			require.NoError(t, b.Ack(ctx, d))
		}
		got += len(ds)
	}
	require.Equal(t, 6, got)
	requireWindowEmpty(t, b)
}

// When ctx ends while Enqueue waits for room, the tasks not published
// fail with ctx's error, reported per task; the window is not leaked.
func TestEnqueueWindowWaitEndsWithContext(t *testing.T) {
	t.Parallel()
	b := windowBackend(t, 1)
	require.NoError(t, b.Enqueue(t.Context(), newTasks("winctx", 1)...))
	b.window <- struct{}{}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	tasks := newTasks("winctx", 3)
	err := b.Enqueue(ctx, tasks...)
	var ee *EnqueueError
	require.True(t, errors.As(err, &ee), "got %v", err)
	require.Len(t, ee.Failed, 3)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	for i, f := range ee.Failed {
		require.Equal(t, tasks[i].ID, f.ID)
	}
	b.releaseWindow()
	require.NoError(t, b.Enqueue(t.Context(), newTasks("winctx", 2)...))
	requireWindowEmpty(t, b)
}

// Batches much larger than the window, from several producers at once,
// while workers ack (whose finished-key records share the window), all
// succeed; every task is delivered and the window ends empty.
func TestPublishWindowUnderLoad(t *testing.T) {
	t.Parallel()
	b := windowBackend(t, 4)
	ctx := t.Context()
	const producers, per = 3, 700
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for range producers {
		wg.Go(func() { errs <- b.Enqueue(ctx, newTasks("winload", per)...) })
	}
	acked := 0
	for acked < producers*per {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ds, err := b.Lease(lctx, "winload", 64, time.Minute)
		cancel()
		require.NoError(t, err, "after %d acks", acked)
		for _, d := range ds {
			require.NoError(t, b.Ack(ctx, d))
		}
		acked += len(ds)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, producers*per, acked)
	requireWindowEmpty(t, b)
}
