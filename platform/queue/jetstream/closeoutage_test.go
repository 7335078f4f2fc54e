package jetstream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// Close during an outage of the server does not wait its whole context
// out: the prefetched messages it cannot give back are left to the
// server, which delivers them again after their AckWait, and nothing is
// lost.
func TestCloseDuringAnOutageReturnsSoon(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, proxy := proxiedServer(t)

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
	requireReturnsWithin(t, 5*time.Second, "Close", func() { _ = b.Close(closeCtx) }, "Close waited for a server it cannot reach")

	// Nothing was lost: the other 19 tasks are delivered to a new backend.
	requireDeliveredAgain(t, srv.ClientURL(), "outage", tasks[1:])
}

// requireReturnsWithin runs f (named what in the log) and fails the test
// with msg when it took limit or longer.
func requireReturnsWithin(t *testing.T, limit time.Duration, what string, f func(), msg string) {
	t.Helper()
	start := time.Now()
	f()
	took := time.Since(start)
	t.Logf("%s took %v", what, took)
	require.Less(t, took, limit, msg)
}

// proxiedServer starts an embedded server listening on loopback and a
// proxy in front of it that the test can cut or freeze.
func proxiedServer(t *testing.T) (*embedded.Server, *netfault.Proxy) {
	t.Helper()
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(t.Context(), opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv, netfault.NewProxy(t, srv.NATS().Addr().String())
}

// requireDeliveredAgain leases from the server at url until every task of
// want was delivered (and acks them).
func requireDeliveredAgain(t *testing.T, url, queueName string, want []*task.Task) {
	t.Helper()
	ctx := t.Context()
	again := openBackend(t, jetstream.Config{URLs: []string{url}, AckWait: 2 * time.Second})
	seen := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < len(want) && time.Now().Before(deadline) {
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		ds, err := again.Lease(lctx, queueName, 20, 10*time.Second)
		lcancel()
		require.NoError(t, err)
		for _, d := range ds {
			seen[d.Task.ID] = true
			require.NoError(t, again.Ack(ctx, d))
		}
	}
	for _, tk := range want {
		require.True(t, seen[tk.ID], "task %s is delivered again", tk.ID)
	}
}

// A pool stopping during an outage gives back the deliveries it leased
// but did not run: that needs the server, so without it Stop does not
// wait its whole context out either; the tasks are delivered again.
func TestPoolStopDuringAnOutageReturnsSoon(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, proxy := proxiedServer(t)
	b, err := jetstream.Open(ctx, jetstream.Params{Config: jetstream.Config{URLs: []string{"nats://" + proxy.Addr()}, AckWait: 2 * time.Second}})
	require.NoError(t, err)

	started := make(chan string, 20)
	release := make(chan struct{})
	route := task.Route{Kind: "k", Queue: "outage", Handler: task.HandlerFunc(func(ctx context.Context, tk *task.Task) error {
		started <- tk.ID
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})}
	rt, err := worker.New(worker.Params{Routes: []task.Route{route}, Backend: b,
		Config: worker.Config{"outage": {Concurrency: 1, BatchSize: 8, Lease: 30 * time.Second}}})
	require.NoError(t, err)
	tasks := make([]*task.Task, 10)
	for i := range tasks {
		tasks[i] = &task.Task{ID: fmt.Sprint("t", i), Kind: "k", Queue: "outage"}
	}
	require.NoError(t, b.Enqueue(ctx, tasks...))
	require.NoError(t, rt.StartPools(ctx))
	<-started                          // one runs, the pool holds others leased
	time.Sleep(200 * time.Millisecond) // the hand-over buffer is full

	proxy.Close()
	close(release)
	stopCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	requireReturnsWithin(t, 5*time.Second, "Stop", func() { _ = rt.Stop(stopCtx) }, "Stop waited for a server it cannot reach")

	// The task that ran acked into the outage; its finished-key record's
	// publish ack cannot come: Close does not wait for it either.
	requireReturnsWithin(t, 5*time.Second, "Close", func() { _ = b.Close(stopCtx) }, "Close waited for a server it cannot reach")
	requireDeliveredAgain(t, srv.ClientURL(), "outage", tasks)
}

// On a frozen network (the connection looks up, nothing comes back),
// Close gives up on the server after the publish timeout, once for all
// queues, not for each queue and then for all of its context.
func TestCloseOnAFrozenNetworkIsBounded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, proxy := proxiedServer(t)
	cfg := jetstream.Config{URLs: []string{"nats://" + proxy.Addr()}, AckWait: 2 * time.Second,
		PublishTimeout: time.Second, Prefetch: 4, MaxPrefetch: 4}
	b, err := jetstream.Open(ctx, jetstream.Params{Config: cfg})
	require.NoError(t, err)
	var all []*task.Task
	for q := range 3 {
		name := fmt.Sprint("frozen", q)
		var tasks []*task.Task
		for i := range 6 {
			tasks = append(tasks, &task.Task{ID: fmt.Sprint(name, "-", i), Kind: "k", Queue: name})
		}
		require.NoError(t, b.Enqueue(ctx, tasks...))
		require.NoError(t, b.Ack(ctx, leaseOne(t, b, name))) // the puller holds the next ones
		all = append(all, tasks[1:]...)
	}
	time.Sleep(300 * time.Millisecond)

	proxy.Freeze()
	closeCtx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	requireReturnsWithin(t, 8*time.Second, "Close", func() { _ = b.Close(closeCtx) }, "Close waited for a server that does not answer")

	for q := range 3 {
		name := fmt.Sprint("frozen", q)
		var want []*task.Task
		for _, tk := range all {
			if tk.Queue == name {
				want = append(want, tk)
			}
		}
		requireDeliveredAgain(t, srv.ClientURL(), name, want)
	}
}

// Foreign messages (not tasks) in the prefetch buffer go to the dead
// letter when leased. During an outage that publish cannot succeed: it
// ends with the Lease's context or the connection, not after the publish
// timeout for each message, so a stopping pool is not held; the messages
// are left to the server and dead-lettered once it is back.
func TestLeaseOfForeignMessagesDuringAnOutageReturnsSoon(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, proxy := proxiedServer(t)
	cfg := jetstream.Config{URLs: []string{"nats://" + proxy.Addr()}, AckWait: 2 * time.Second,
		PublishTimeout: 10 * time.Second, Prefetch: 8, MaxPrefetch: 8}
	b, err := jetstream.Open(ctx, jetstream.Params{Config: cfg})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	first := &task.Task{ID: "first", Kind: "k", Queue: "foreign-outage"}
	require.NoError(t, b.Enqueue(ctx, first)) // creates the stream
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	subject := jetstream.WorkSubject(t, b, "foreign-outage")
	for i := range 3 {
		_, err := js.Publish(ctx, subject, []byte(fmt.Sprint("foreign ", i)))
		require.NoError(t, err)
	}
	require.NoError(t, b.Ack(ctx, leaseOne(t, b, "foreign-outage"))) // the puller holds the foreign ones
	time.Sleep(200 * time.Millisecond)

	proxy.Close()
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	requireReturnsWithin(t, 4*time.Second, "Lease", func() {
		_, err = b.Lease(lctx, "foreign-outage", 8, 5*time.Second)
	}, "Lease waited out the publish timeout for each foreign message")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// Nothing was lost: once the server is reachable, each is dead-lettered.
	again := openBackend(t, jetstream.Config{URLs: []string{srv.ClientURL()}, AckWait: 2 * time.Second})
	require.Eventually(t, func() bool {
		lctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, _ = again.Lease(lctx, "foreign-outage", 8, 5*time.Second)
		dls, err := again.ListDead(ctx, "foreign-outage", 10)
		return err == nil && len(dls) == 3
	}, 20*time.Second, 50*time.Millisecond, "every foreign message reaches the dead letter")
}

// TestGiveBackDuringAnOutageIsNoReturn: a pool stopping while the
// connection is lost cannot give back the deliveries waiting in its
// hand-over buffer: the copy is not stored, and a negative ack would only
// be buffered by nats.go until a reconnect the stopping process does not
// see. They are counted as failed releases (delivered again when their
// AckWait ends), not as returned. They used to be counted returned: the
// negative ack reported sent was dropped with the connection.
func TestGiveBackDuringAnOutageIsNoReturn(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, proxy := proxiedServer(t)
	b, err := jetstream.Open(ctx, jetstream.Params{Config: jetstream.Config{URLs: []string{"nats://" + proxy.Addr()}, AckWait: 2 * time.Second}})
	require.NoError(t, err)
	started := make(chan string, 20)
	route := task.Route{Kind: "k", Queue: "outage", Handler: task.HandlerFunc(func(ctx context.Context, tk *task.Task) error {
		started <- tk.ID
		<-ctx.Done() // cancelled by Stop after the drain timeout
		return ctx.Err()
	})}
	rt, err := worker.New(worker.Params{Routes: []task.Route{route}, Backend: b,
		Config: worker.Config{"outage": {Concurrency: 1, BatchSize: 4, Lease: 30 * time.Second, DrainTimeout: 200 * time.Millisecond}}})
	require.NoError(t, err)
	tasks := make([]*task.Task, 5)
	for i := range tasks {
		tasks[i] = &task.Task{ID: fmt.Sprint("t", i), Kind: "k", Queue: "outage"}
	}
	require.NoError(t, b.Enqueue(ctx, tasks...))
	require.NoError(t, rt.StartPools(ctx))
	<-started
	var held int64 // one runs, the others wait in the hand-over buffer
	require.Eventually(t, func() bool {
		// Read twice, the same: a message on its way to the prefetch
		// buffer is pending for the server and not yet buffered here,
		// and counts in flight for a moment (it read 5 under load).
		st, err := b.Stats(ctx, "outage")
		if err != nil || st.InFlight < 4 { // then it leases no more (it refills by two)
			return false
		}
		time.Sleep(200 * time.Millisecond)
		again, err := b.Stats(ctx, "outage")
		held = again.InFlight
		return err == nil && again.InFlight == st.InFlight
	}, 10*time.Second, 10*time.Millisecond)

	proxy.Close()
	require.Eventually(t, func() bool { return !b.Status().Connected }, 10*time.Second, 10*time.Millisecond)
	stopCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_ = rt.Stop(stopCtx)
	_ = b.Close(stopCtx)
	p, ok := rt.Pool("outage")
	require.True(t, ok)
	st := p.Stats()
	require.Zero(t, st.Returned, "nothing reached the server: %+v", st)
	require.Equal(t, held, st.SettleFailed.Release, "the cancelled handler's and the hand-over buffer's: %+v", st)
	requireDeliveredAgain(t, srv.ClientURL(), "outage", tasks)
}
