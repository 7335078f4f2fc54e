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

// TestRetryOnTheLastDeliveryReportsTheDeadLetter: a Retry that max_deliver
// forbids is a dead letter, and Retry says so (queue.ErrDeadLettered)
// instead of reporting a retry that will never happen.
func TestRetryOnTheLastDeliveryReportsTheDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{MaxDeliver: 2, AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Kind: "k", Queue: "rt"}))
	lease := func() *queue.Delivery {
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		ds, err := b.Lease(lctx, "rt", 1, 5*time.Second)
		require.NoError(t, err)
		return ds[0]
	}
	d := lease()
	require.Equal(t, 1, d.Task.Attempt)
	require.NoError(t, b.Retry(ctx, d, time.Now()), "attempt 1 of 2: a real retry")
	d = lease()
	require.Equal(t, 2, d.Task.Attempt)
	d.FailReason = "database down"
	require.ErrorIs(t, b.Retry(ctx, d, time.Now()), queue.ErrDeadLettered)
	dead, err := b.ListDead(ctx, "rt", 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "t1", dead[0].Task.ID)
	// The dead letter keeps why the attempt failed, and the consumer is
	// given the reason stored (it used to store only "retry requested
	// ...", while the source was told the handler's error).
	require.Equal(t, "database down (retry requested after the last of 2 deliveries (max_deliver))", dead[0].Reason)
	require.Equal(t, dead[0].Reason, d.DeadReason)
	// The original's termination is an ack the server applies after
	// Retry returned: the queue empties soon after.
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, "rt")
		return err == nil && st.Ready+st.InFlight+st.Delayed == 0
	}, 5*time.Second, 10*time.Millisecond, "the dead-lettered task left the queue")
}

// TestDeadLetterBehindAnEarlierCopyGivesItsReason: a DeadLetter for a
// delivery whose dead letter was stored before (a DeadLetter whose term
// was lost, or the server's max-deliveries advisory: the copy's
// Nats-Msg-Id names the work message) is de-duplicated behind that copy,
// which keeps its reason. The consumer used to be left with its own
// reason and told the task's source that one, while ListDead showed the
// stored one; Delivery.DeadReason now gives the stored reason.
func TestDeadLetterBehindAnEarlierCopyGivesItsReason(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{MaxDeliver: 3, AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Kind: "k", Queue: "behind"}))
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ds, err := b.Lease(lctx, "behind", 1, 5*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	d := ds[0]
	r, err := b.receiptOf(d)
	require.NoError(t, err)
	_, err = b.publishDead(ctx, r.q, d.Task, r.keyed, r.seq, 1, "stored first")
	require.NoError(t, err)

	require.NoError(t, b.DeadLetter(ctx, d, "handler: bad order"))
	require.Equal(t, "stored first", d.DeadReason, "the reason stored, not the one asked")
	dead, err := b.ListDead(ctx, "behind", 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "stored first", dead[0].Reason)
}

// TestExhaustedTasksReachAWatcherAcrossACrash: tasks whose lease expired on
// their last delivery are dead-lettered from the server's MAX_DELIVERIES
// advisories, which are kept in a stream until handled. Process A sees
// 300 of them arrive while its watcher is stuck on the first (the old
// 256-slot channel dropped the overflow), then dies without handling them
// (the old subscription lost what it had not handled); process B, started
// afterwards on the same server, dead-letters every one and tells its
// watcher, and nothing is left in the queue.
func TestExhaustedTasksReachAWatcherAcrossACrash(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, err := embedded.Start(ctx, embedded.Config{StoreDir: t.TempDir()}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	cfg := Config{MaxDeliver: 1, AckWait: 500 * time.Millisecond}
	const n = 300

	a, err := Open(ctx, Params{Config: cfg, Server: srv})
	require.NoError(t, err)
	stuck := make(chan struct{})
	var stuckOnce sync.Once
	a.WatchDead(func(queue.DeadLetter) { <-stuck })
	defer stuckOnce.Do(func() { close(stuck) })
	tasks := make([]*task.Task, n)
	for i := range tasks {
		tasks[i] = &task.Task{Kind: "k", Queue: "ex"}
	}
	require.NoError(t, a.Enqueue(ctx, tasks...))
	ids := map[string]bool{}
	for _, tk := range tasks {
		ids[tk.ID] = true
	}
	// Lease everything once and never settle: every task is exhausted.
	advisories := func() uint64 {
		s, err := a.js.Stream(ctx, a.names.advisoryStream())
		require.NoError(t, err)
		return s.CachedInfo().State.LastSeq
	}
	for deadline := time.Now().Add(60 * time.Second); advisories() < n; {
		require.True(t, time.Now().Before(deadline), "only %d of %d advisories", advisories(), n)
		lctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, _ = a.Lease(lctx, "ex", n, 100*time.Millisecond)
		cancel()
	}
	// A dies: its connection goes without a goodbye.
	a.nc.Close()
	stuckOnce.Do(func() { close(stuck) })
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = a.Close(cctx)
	cancel()

	b, err := Open(ctx, Params{Config: cfg, Server: srv})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	var mu sync.Mutex
	told := map[string]int{}
	b.WatchDead(func(dl queue.DeadLetter) {
		mu.Lock()
		told[dl.Task.ID]++
		mu.Unlock()
	})
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(told) == n
	}, 60*time.Second, 20*time.Millisecond, "every exhausted task reaches B's watcher")
	mu.Lock()
	for id := range told {
		require.True(t, ids[id], "unknown id %s", id)
	}
	mu.Unlock()
	require.Eventually(t, func() bool {
		dead, err := b.ListDead(ctx, "ex", 0)
		require.NoError(t, err)
		st, err := b.Stats(ctx, "ex")
		require.NoError(t, err)
		return len(dead) == n && st.Ready+st.InFlight+st.Delayed == 0
	}, 30*time.Second, 50*time.Millisecond, "%d dead letters, the queue empty", n)
}
