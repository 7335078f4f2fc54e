package jetstream_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/natstest"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// startCluster starts an n-node cluster (natstest.StartCluster).
func startCluster(t *testing.T, n int) []*embedded.Server { return natstest.StartCluster(t, n) }

// TestClusterFailover runs two worker runtimes, each on its own backend
// connected to a different server of a three-node cluster, over a queue
// with three replicas. The server of one runtime is shut down midway;
// every task is still handled.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	srvs := startCluster(t, 3)
	urls := make([]string, len(srvs))
	for i, s := range srvs {
		urls[i] = s.ClientURL()
	}
	// Each backend prefers its own server and fails over to the others.
	newBackend := func(first int) *jetstream.Backend {
		order := append([]string{urls[first]}, append(append([]string{}, urls[:first]...), urls[first+1:]...)...)
		cfg := jetstream.Config{
			URL:          strings.Join(order, ","),
			Replicas:     3,
			AckWait:      2 * time.Second,
			StreamPrefix: "CLUSTER",
			Prefetch:     16,
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		b, err := jetstream.Open(ctx, jetstream.Params{Config: cfg, NATSOptions: []nats.Option{nats.DontRandomize()}})
		require.NoError(t, err)
		return b
	}
	a, b := newBackend(0), newBackend(1)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = a.Close(ctx)
		_ = b.Close(ctx)
	}()

	const total = 3000
	var (
		mu      sync.Mutex
		handled = make(map[string]int, total)
		byRT    [2]atomic.Int64
		done    = make(chan struct{})
		count   atomic.Int64
	)
	handler := func(rt int) task.Handler {
		return task.HandlerFunc(func(ctx context.Context, tk *task.Task) error {
			time.Sleep(500 * time.Microsecond) // spread the work over the failover
			mu.Lock()
			handled[tk.ID]++
			first := handled[tk.ID] == 1
			mu.Unlock()
			byRT[rt].Add(1)
			if first && count.Add(1) == total {
				close(done)
			}
			return nil
		})
	}
	pool := worker.PoolConfig{Concurrency: 8, Lease: 2 * time.Second, MaxAttempts: 20,
		Backoff: worker.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}}
	newRuntime := func(be *jetstream.Backend, rt int) *worker.Runtime {
		r, err := worker.New(worker.Params{
			Routes:  []task.Route{{Kind: "cluster.task", Queue: "cluster", Handler: handler(rt)}},
			Backend: be,
			Config:  worker.Config{"cluster": pool},
		})
		require.NoError(t, err)
		return r
	}
	rtA, rtB := newRuntime(a, 0), newRuntime(b, 1)

	ids := make(map[string]bool, total)
	batch := make([]*task.Task, 0, 100)
	for i := range total {
		tk := &task.Task{Kind: "cluster.task", Queue: "cluster", Payload: []byte(fmt.Sprint(i))}
		batch = append(batch, tk)
		if len(batch) == cap(batch) {
			require.NoError(t, a.Enqueue(t.Context(), batch...))
			for _, tk := range batch {
				ids[tk.ID] = true
			}
			batch = batch[:0]
		}
	}
	require.Len(t, ids, total)

	require.NoError(t, rtA.Start(t.Context()))
	require.NoError(t, rtB.Start(t.Context()))
	stop := func(r *worker.Runtime) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, r.Stop(ctx))
	}
	waitFor(t, 60*time.Second, "a third of the tasks", func() bool { return count.Load() >= total/3 })
	require.NoError(t, srvs[1].Shutdown(t.Context()), "shut down runtime B's server")

	select {
	case <-done:
	case <-time.After(120 * time.Second):
		t.Fatalf("only %d of %d tasks handled after the failover (a: %d, b: %d)", count.Load(), total, byRT[0].Load(), byRT[1].Load())
	}
	// A task B handled while its server went away may have lost its ack:
	// it is redelivered to A after AckWait and handled again (at least
	// once). Wait for the stream to empty before stopping the consumers.
	require.Eventually(t, func() bool {
		st, err := a.Stats(t.Context(), "cluster")
		return err == nil && st.Ready+st.InFlight+st.Dead+st.Delayed == 0
	}, 60*time.Second, 50*time.Millisecond, "the stream empties once lost acks are redelivered")
	stop(rtA)
	stop(rtB)

	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for id, n := range handled {
		require.True(t, ids[id], "unknown task %s", id)
		dups += n - 1
	}
	require.Len(t, handled, total, "every task handled")
	require.Positive(t, byRT[0].Load(), "runtime A worked")
	require.Positive(t, byRT[1].Load(), "runtime B worked")
	st, err := a.Stats(t.Context(), "cluster")
	require.NoError(t, err)
	require.Zero(t, st.Ready+st.InFlight+st.Dead, "nothing left: %+v", st)
	t.Logf("handled %d tasks (a: %d, b: %d, redelivered after the failover: %d); b reconnects: %d",
		total, byRT[0].Load(), byRT[1].Load(), dups, b.Status().Reconnects)
}
