package jetstream

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestCloseGivesTheBufferBackUncounted: a process closes while its
// prefetch buffer holds tasks that never ran. Another process on the same
// server gets every one of them at its first attempt, keyed or not: the
// buffer's messages are given back as Release gives back a delivery (a
// copy that carries the attempts used, then the ack), not with a negative
// ack, which the server would count as a delivery.
func TestCloseGivesTheBufferBackUncounted(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, err := embedded.Start(ctx, embedded.Config{StoreDir: t.TempDir()}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	const (
		prefetch = 8
		qname    = "closing"
	)
	cfg := Config{Prefetch: prefetch, AckWait: 5 * time.Second}
	a, err := Open(ctx, Params{Config: cfg, Server: srv})
	require.NoError(t, err)
	var tasks []*task.Task
	for i := range prefetch + 1 {
		tk := &task.Task{Kind: "k", Queue: qname}
		if i%2 == 0 {
			tk.Key = "key-" + strconv.Itoa(i) // keyed; the others get a generated key
		}
		tasks = append(tasks, tk)
	}
	require.NoError(t, a.Enqueue(ctx, tasks...))
	ds, err := a.Lease(ctx, qname, 1, 5*time.Second) // starts the puller
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.NoError(t, a.Ack(ctx, ds[0]))
	q := a.knownQueue(qname)
	require.Eventually(t, func() bool {
		buffered, _ := q.prefetched(time.Now())
		return buffered == prefetch-1 // the first request brought prefetch; Lease took one
	}, 10*time.Second, 5*time.Millisecond, "the buffer fills up")
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	require.NoError(t, a.Close(cctx))
	cancel()

	b, err := Open(ctx, Params{Config: cfg, Server: srv})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	seen := map[string]bool{ds[0].Task.ID: true}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for len(seen) < len(tasks) {
		got, err := b.Lease(lctx, qname, len(tasks), 5*time.Second)
		require.NoError(t, err, "leased %d of %d", len(seen), len(tasks))
		for _, d := range got {
			require.False(t, seen[d.Task.ID], "task %s delivered twice", d.Task.ID)
			seen[d.Task.ID] = true
			require.Equal(t, 1, d.Task.Attempt, "task %s (key %q) never ran, yet its attempt was counted", d.Task.ID, d.Task.Key)
			require.NoError(t, b.Ack(ctx, d))
		}
	}
}
