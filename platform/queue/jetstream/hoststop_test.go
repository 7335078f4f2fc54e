package jetstream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// TestStopWithADeafHandlerGivesTheBufferBack: a host (an fx app of the
// worker runtime on this backend) stops while a handler ignores its
// cancellation and tasks wait in the pool's hand-over buffer and in the
// backend's prefetch buffer. None of them ran: each comes back to the
// next consumer at its first attempt, the deaf handler's task included
// (Stop gave it back). The pools used to take the whole stop timeout, fx
// then skipped the backend's close, and the prefetched tasks stayed with
// the old connection (and came back with a delivery counted once it
// went).
func TestStopWithADeafHandlerGivesTheBufferBack(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	cfg := jetstream.Config{URL: srv.ClientURL(), AckWait: 2 * time.Second, Prefetch: 4, MaxPrefetch: 4}
	stuck := make(chan struct{})
	defer close(stuck)
	started := make(chan string, 1)
	var b *jetstream.Backend
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(lifecycle.NewRegistry(nil, nil)),
		fx.Provide(func(lc fx.Lifecycle) (queue.Backend, error) {
			var err error
			b, err = jetstream.Open(ctx, jetstream.Params{Config: cfg})
			if err != nil {
				return nil, err
			}
			lc.Append(fx.StopHook(b.Close))
			return b, nil
		}),
		fx.Supply(worker.Config{"deaf": {Concurrency: 1, BatchSize: 1, DrainTimeout: 200 * time.Millisecond, Lease: 30 * time.Second}}),
		worker.SupplyRoute(task.Route{Kind: "k", Queue: "deaf", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
			started <- tk.ID
			<-stuck // ignores ctx
			return nil
		})}),
		worker.Module,
		fx.StopTimeout(4*time.Second),
	)
	app.RequireStart()
	t.Cleanup(func() { _ = b.Close(context.Background()) }) // unless the app closed it
	var tasks []*task.Task
	for i := range 6 {
		tasks = append(tasks, &task.Task{ID: fmt.Sprint("t", i), Kind: "k", Queue: "deaf"})
	}
	require.NoError(t, b.Enqueue(ctx, tasks...))
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("no handler started")
	}
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, "deaf")
		return err == nil && st.Ready == 4 // one runs, one waits in the hand-over buffer, 4 prefetched
	}, 10*time.Second, 10*time.Millisecond, "the buffers fill up")

	stopCtx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	stopErr := app.Stop(stopCtx)

	again := openBackend(t, jetstream.Config{URL: srv.ClientURL(), AckWait: 2 * time.Second})
	seen := map[string]int{}
	for len(seen) < len(tasks) {
		lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
		ds, err := again.Lease(lctx, "deaf", len(tasks), 10*time.Second)
		lcancel()
		require.NoError(t, err, "delivered again: %v", seen)
		for _, d := range ds {
			seen[d.Task.ID] = d.Task.Attempt
			require.NoError(t, again.Ack(ctx, d))
		}
	}
	for id, attempt := range seen {
		require.Equal(t, 1, attempt, "task %s never ran, yet its attempt was counted", id)
	}
	require.ErrorContains(t, stopErr, "handlers that ignore cancellation (tasks t0;")
}
