package jetstream

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestBufferDoesNotOutliveAnOutage: the server goes away (stopped) for
// longer than AckWait while the prefetch buffer holds tasks, and comes
// back with its store. Meanwhile its AckWait ran out for the buffered
// messages and it delivers them again. The in-progress acks the buffer
// keeper sent during the outage never reached it (nats.go only buffers
// them while it reconnects), so the buffered copies are stale: each task
// is handed out once, by its new delivery, not also by its stale copy.
// The keeper used to take such an in-progress ack for a renewal, and
// Lease handed out the stale copy and the new delivery of the same task
// at once (two workers running it).
func TestBufferDoesNotOutliveAnOutage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	start := func(addr string) *embedded.Server {
		opts, err := embedded.Config{StoreDir: dir, Listen: addr}.Options()
		require.NoError(t, err)
		srv, err := embedded.StartWithOptions(ctx, opts, 10*time.Second, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
		return srv
	}
	srv := start("127.0.0.1:0")
	_, port, err := net.SplitHostPort(srv.NATS().Addr().String())
	require.NoError(t, err)
	const (
		prefetch = 4
		qname    = "stale"
		ackWait  = time.Second
	)
	b, err := Open(ctx, Params{Config: Config{URLs: []string{srv.ClientURL()}, AckWait: ackWait, Prefetch: prefetch, MaxPrefetch: prefetch}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	var tasks []*task.Task
	for i := range prefetch + 1 {
		tasks = append(tasks, &task.Task{ID: "t" + strconv.Itoa(i), Kind: "k", Queue: qname})
	}
	require.NoError(t, b.Enqueue(ctx, tasks...))
	first := leaseOne(t, b, qname) // starts the puller
	require.NoError(t, b.Ack(ctx, first))
	// Its ack goes out without waiting for an answer: heard before the
	// server goes away, or the server delivers that task again as well.
	require.NoError(t, b.confirmHeard(ctx), "the server heard the first task's ack")
	q := b.knownQueue(qname)
	require.Eventually(t, func() bool {
		buffered, _ := q.prefetched(time.Now())
		return buffered == prefetch-1 // the first request brought prefetch; Lease took one
	}, 10*time.Second, 5*time.Millisecond, "the buffer fills up")

	require.NoError(t, srv.Shutdown(ctx))
	require.Eventually(t, func() bool { return !b.Status().Connected }, 10*time.Second, 10*time.Millisecond, "disconnected")
	time.Sleep(2 * ackWait) // the outage: the server's AckWait of the buffered messages runs out
	start("127.0.0.1:" + port)
	require.Eventually(t, func() bool { return b.Check(ctx) == nil }, 20*time.Second, 20*time.Millisecond, "reconnected")

	// Lease everything without settling: a task handed out twice is run
	// twice at once.
	held := map[string]int{}
	var leased []*queue.Delivery
	for len(held) < len(tasks)-1 {
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		ds, err := b.Lease(lctx, qname, prefetch, 30*time.Second)
		cancel()
		require.NoError(t, err, "leased %d of %d", len(held), len(tasks)-1)
		for _, d := range ds {
			held[d.Task.ID]++
		}
		leased = append(leased, ds...)
	}
	// The other copies, if any, arrive with the next pull.
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	ds, err := b.Lease(lctx, qname, prefetch, 30*time.Second)
	cancel()
	for _, d := range ds {
		held[d.Task.ID]++
	}
	leased = append(leased, ds...)
	for _, d := range leased {
		require.NoError(t, b.Ack(ctx, d))
	}
	for id, n := range held {
		require.Equal(t, 1, n, "task %s handed out %d times at once", id, n)
	}
	require.ErrorIs(t, err, context.DeadlineExceeded, "nothing more to lease")
}

// TestBufferDoesNotOutliveAPartition: the network between the backend and
// the server freezes (nothing passes, the connection stays open, as in a
// partition) for longer than AckWait while the prefetch buffer holds
// tasks. The in-progress acks the buffer keeper sent are held, the
// server's AckWait runs out and, once the network is back, the server
// delivers the tasks again: each is handed out once, by its new delivery.
// The keeper, which nats.go told the in-progress acks were sent, used to
// take them for renewals, and Lease handed out the stale copies beside
// the new deliveries.
func TestBufferDoesNotOutliveAPartition(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(ctx, opts, 10*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	proxy := netfault.NewProxy(t, srv.NATS().Addr().String())
	const (
		prefetch = 4
		qname    = "partition"
		ackWait  = time.Second
	)
	b, err := Open(ctx, Params{Config: Config{URLs: []string{"nats://" + proxy.Addr()}, AckWait: ackWait, Prefetch: prefetch, MaxPrefetch: prefetch}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	var tasks []*task.Task
	for i := range prefetch + 1 {
		tasks = append(tasks, &task.Task{ID: "t" + strconv.Itoa(i), Kind: "k", Queue: qname})
	}
	require.NoError(t, b.Enqueue(ctx, tasks...))
	first := leaseOne(t, b, qname) // starts the puller
	require.NoError(t, b.Ack(ctx, first))
	// Its ack goes out without waiting for an answer: heard before the
	// server goes away, or the server delivers that task again as well.
	require.NoError(t, b.confirmHeard(ctx), "the server heard the first task's ack")
	q := b.knownQueue(qname)
	require.Eventually(t, func() bool {
		buffered, _ := q.prefetched(time.Now())
		return buffered == prefetch-1
	}, 10*time.Second, 5*time.Millisecond, "the buffer fills up")

	proxy.Freeze()
	time.Sleep(3 * ackWait) // the partition: the server's AckWait of the buffered messages runs out
	proxy.Thaw()

	held := map[string]int{}
	var leased []*queue.Delivery
	for len(held) < len(tasks)-1 {
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		ds, err := b.Lease(lctx, qname, prefetch, 30*time.Second)
		cancel()
		require.NoError(t, err, "leased %d of %d", len(held), len(tasks)-1)
		for _, d := range ds {
			held[d.Task.ID]++
		}
		leased = append(leased, ds...)
	}
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	ds, err := b.Lease(lctx, qname, prefetch, 30*time.Second)
	cancel()
	for _, d := range ds {
		held[d.Task.ID]++
	}
	leased = append(leased, ds...)
	for _, d := range leased {
		require.NoError(t, b.Ack(ctx, d))
	}
	for id, n := range held {
		require.Equal(t, 1, n, "task %s handed out %d times at once", id, n)
	}
	require.ErrorIs(t, err, context.DeadlineExceeded, "nothing more to lease")
}
