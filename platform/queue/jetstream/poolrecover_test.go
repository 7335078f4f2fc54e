package jetstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// outagePool is a pool of queue "recover" on a backend connected to a
// server of its own, on which another host with another ack_wait set the
// queue up first: the pool's first Lease cannot set the queue up (its
// durable consumer differs), and the pool is degraded. (A Lease whose
// server is down does not fail: setting the queue up waits for the
// reconnect; the pool's probes degrade it then, poolunreachable_test.go.)
type outagePool struct {
	dir, addr string
	srv       *embedded.Server
	b         *jetstream.Backend
	comp      *lifecycle.Component
	ran       chan string
}

func startOutagePool(t *testing.T) *outagePool {
	t.Helper()
	ctx := t.Context()
	o := &outagePool{dir: t.TempDir(), ran: make(chan string, 1)}
	o.srv = startServer(t, o.dir, "127.0.0.1:0", nil)
	o.addr = o.srv.NATS().Addr().String()
	other, err := jetstream.Open(ctx, jetstream.Params{Config: jetstream.Config{URLs: []string{o.srv.ClientURL()}, AckWait: 5 * time.Second}})
	require.NoError(t, err)
	require.NoError(t, other.Declare(ctx, "recover"))
	require.NoError(t, other.Close(ctx))
	// Only the queue's consumer differs: Open checks the advisory
	// consumer's ack wait too, and would refuse to open.
	o.deleteConsumerOf(t, jetstream.DefaultStreamPrefix+"_ADV_"+jetstream.DefaultConsumer)

	b, err := jetstream.Open(ctx, jetstream.Params{Config: jetstream.Config{URLs: []string{o.srv.ClientURL()}, AckWait: 2 * time.Second}})
	require.NoError(t, err)
	o.b = b
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(cctx)
	})
	reg := lifecycle.NewRegistry(nil, nil)
	router, err := worker.NewRouter([]task.Route{{Kind: "k", Queue: "recover", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		o.ran <- tk.ID
		return nil
	})}})
	require.NoError(t, err)
	p, err := worker.NewPool(worker.PoolParams{Queue: "recover", Backend: b, Router: router, Registry: reg,
		Config: worker.PoolConfig{Concurrency: 1, DrainTimeout: time.Second}})
	require.NoError(t, err)
	require.NoError(t, p.Start(ctx))
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, p.Stop(sctx))
	})
	comp, ok := reg.Get("pool/recover")
	require.True(t, ok)
	o.comp = comp
	waitFor(t, 30*time.Second, "the pool degraded by a Lease that could not set the queue up", func() bool {
		return comp.State() == lifecycle.Degraded
	})
	require.Contains(t, comp.Status().LastError, "ack_wait")
	return o
}

// deleteConsumer deletes the queue's durable consumer on the server, as
// an operator would to settle the conflict.
func (o *outagePool) deleteConsumer(t *testing.T) {
	t.Helper()
	o.deleteConsumerOf(t, jetstream.DefaultStreamPrefix+"_Q_recover")
}

// deleteConsumerOf deletes the durable consumer of stream on the server.
func (o *outagePool) deleteConsumerOf(t *testing.T, stream string) {
	t.Helper()
	nc, err := nats.Connect(o.srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	require.NoError(t, js.DeleteConsumer(t.Context(), stream, jetstream.DefaultConsumer))
}

// A pool whose Lease failed (the queue could not be set up: another
// host's consumer differed) shows running again once the conflict is
// gone, although its queue stays empty and its next Lease, which set the
// queue up, only waits: the backend's Probe reached the queue's
// consumer. It then runs what comes. (Before: it stayed degraded until a
// Lease returned tasks, showing an operator a problem that was gone.)
func TestPoolDegradedByAFailedSetUpRunsAgainOnceItIsSetUpWithAnEmptyQueue(t *testing.T) {
	t.Parallel()
	o := startOutagePool(t)

	o.deleteConsumer(t)
	start := time.Now()
	waitFor(t, 30*time.Second, "the pool running again with an empty queue", func() bool {
		return o.comp.State() == lifecycle.Running
	})
	t.Logf("running again %v after the conflict was settled", time.Since(start).Round(time.Millisecond))
	st, err := o.b.Stats(t.Context(), "recover")
	require.NoError(t, err)
	require.Zero(t, st.Ready+st.InFlight, "no task came: the probe made it running")

	require.NoError(t, o.b.Enqueue(t.Context(), &task.Task{ID: "after", Kind: "k", Queue: "recover"}))
	select {
	case id := <-o.ran:
		require.Equal(t, "after", id)
	case <-time.After(30 * time.Second):
		t.Fatal("the task enqueued after the recovery did not run")
	}
}

// A pool that cannot set its queue up stays degraded, also through an
// outage of its server and its restart: its Leases fail (or wait for the
// reconnect), its probes find the queue not set up, and its state never
// passes for running meanwhile (sampled every few milliseconds over
// several Lease attempts and probe periods).
func TestPoolThatCannotSetItsQueueUpStaysDegradedThroughAnOutage(t *testing.T) {
	t.Parallel()
	o := startOutagePool(t)
	sample := func(d time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			require.Equal(t, lifecycle.Degraded, o.comp.State(), "last error: %s", o.comp.Status().LastError)
		}
	}
	sample(3 * time.Second)
	require.NoError(t, o.srv.Shutdown(t.Context()))
	sample(4 * time.Second)
	startServer(t, o.dir, o.addr, nil) // back, on its store: the conflict too
	waitFor(t, 30*time.Second, "the reconnect", func() bool { return o.b.Status().Reconnects >= 1 && o.b.Status().Connected })
	sample(4 * time.Second)
	require.ErrorIs(t, o.b.Probe(t.Context(), "recover"), jetstream.ErrUnreachable)
}

var _ queue.Prober = (*jetstream.Backend)(nil)
