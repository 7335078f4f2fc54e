package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// startCluster starts n nats-servers with JetStream on loopback, random
// ports, forming one cluster, and waits until JetStream answers.
func startCluster(t *testing.T, n int) []*embedded.Server {
	t.Helper()
	// The route ports are reserved by listening and closing, so another
	// test may take one before the server binds it: try again with new
	// ports when a cluster does not come up.
	var srvs []*embedded.Server
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if srvs, err = tryCluster(t, n); err == nil {
			break
		}
		t.Logf("cluster start, attempt %d: %v", attempt, err)
	}
	require.NoError(t, err)
	// JetStream answers once the meta group elected a leader.
	nc, err := nats.Connect(srvs[0].ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	// A stream of n replicas also needs every peer online and current.
	waitFor(t, 30*time.Second, "a JetStream meta leader and every peer current", func() bool {
		for _, s := range srvs {
			if !s.NATS().JetStreamIsClustered() || !s.NATS().JetStreamIsCurrent() {
				return false
			}
		}
		_, err := nc.Request("$JS.API.INFO", nil, time.Second)
		return err == nil
	})
	return srvs
}

// tryCluster starts n clustered servers once; on failure it shuts down
// those that started and returns the error.
func tryCluster(t *testing.T, n int) ([]*embedded.Server, error) {
	t.Helper()
	// A JetStream cluster needs its routes configured up front: reserve n
	// loopback ports for them.
	routes := make([]*url.URL, n)
	ports := make([]int, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ports[i] = l.Addr().(*net.TCPAddr).Port
		require.NoError(t, l.Close())
		routes[i] = &url.URL{Scheme: "nats", Host: l.Addr().String()}
	}
	srvs := make([]*embedded.Server, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		opts, err := embedded.Config{
			StoreDir:   t.TempDir(),
			Listen:     "127.0.0.1:0",
			ServerName: fmt.Sprintf("n%d", i+1),
		}.Options()
		require.NoError(t, err)
		opts.Cluster = server.ClusterOpts{Name: "plba-test", Host: "127.0.0.1", Port: ports[i]}
		opts.Routes = routes
		wg.Go(func() {
			srvs[i], errs[i] = embedded.StartWithOptions(t.Context(), opts, 30*time.Second, nil)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range srvs {
			if s != nil {
				_ = s.Shutdown(context.Background())
			}
		}
		return nil, err
	}
	for i := range n {
		t.Cleanup(func() { _ = srvs[i].Shutdown(context.Background()) })
	}
	return srvs, nil
}

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
