package jetstream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// Close during an outage of the server does not wait its whole context
// out: the prefetched messages it cannot give back are left to the
// server, which delivers them again after their AckWait, and nothing is
// lost.
func TestCloseDuringAnOutageReturnsSoon(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(ctx, opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	proxy := netfault.NewProxy(t, srv.NATS().Addr().String())

	cfg := jetstream.Config{URLs: []string{"nats://" + proxy.Addr()}, AckWait: 2 * time.Second, Prefetch: 8, MaxPrefetch: 8}
	b, err := jetstream.Open(ctx, jetstream.Params{Config: cfg})
	require.NoError(t, err)
	tasks := make([]*task.Task, 20)
	for i := range tasks {
		tasks[i] = &task.Task{ID: fmt.Sprint("t", i), Kind: "k", Queue: "outage"}
	}
	require.NoError(t, b.Enqueue(ctx, tasks...))
	d := leaseOne(t, b, "outage") // the puller now holds the next ones
	require.NoError(t, b.Ack(ctx, d))
	time.Sleep(200 * time.Millisecond) // the buffer is refilled

	proxy.Close() // the server is gone for this client
	closeCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	_ = b.Close(closeCtx)
	took := time.Since(start)
	t.Logf("Close took %v", took)
	require.Less(t, took, 5*time.Second, "Close waited for a server it cannot reach")

	// Nothing was lost: the other 19 tasks are delivered to a new backend.
	again := openBackend(t, jetstream.Config{URLs: []string{srv.ClientURL()}, AckWait: 2 * time.Second})
	seen := map[string]bool{"t0": true}
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < len(tasks) && time.Now().Before(deadline) {
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		ds, err := again.Lease(lctx, "outage", 20, 10*time.Second)
		lcancel()
		require.NoError(t, err)
		for _, d := range ds {
			seen[d.Task.ID] = true
			require.NoError(t, again.Ack(ctx, d))
		}
	}
	require.Len(t, seen, len(tasks), "every task is delivered again")
}
