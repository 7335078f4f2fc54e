package jetstream

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestReleaseWhoseLastCopyWasStoredUnansweredIsNoDeadLetter: a Release on
// the last delivery max_deliver allows waits for room in a full work
// stream; its last offer of the copy goes out as room is made, and the
// server stores it, but the answer comes only after the wait ended (here
// the network between backend and server freezes for that long). The copy
// is queued, so the task is given back: the original is acked, and no
// dead letter is stored. Release took the unanswered offer for "still
// full": it dead-lettered the task (queue.ErrDeadLettered, its source told
// so) while its copy stayed queued, to be delivered and run again.
func TestReleaseWhoseLastCopyWasStoredUnansweredIsNoDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(ctx, opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	proxy := netfault.NewProxy(t, srv.NATS().Addr().String())
	const (
		qname   = "release-unanswered"
		publish = 4 * time.Second
	)
	b := openTestBackend(t, Config{URLs: []string{"nats://" + proxy.Addr()}, MaxMsgs: 2, MaxDeliver: 1,
		AckWait: 20 * time.Second, PublishTimeout: publish, Prefetch: 1, MaxPrefetch: 1})
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "a", Kind: "k", Queue: qname}, &task.Task{ID: "b", Kind: "k", Queue: qname}))
	first := leaseOne(t, b, qname)
	require.NoError(t, b.Extend(ctx, first, 12*time.Second))
	r, err := b.receiptOf(first)
	require.NoError(t, err)
	other := uint64(1)
	if r.seq == 1 {
		other = 2
	}

	released := make(chan error, 1)
	go func() { released <- b.Release(ctx, first) }()
	select {
	case err := <-released:
		t.Fatalf("Release returned while the stream was full: %v", err)
	case <-time.After(time.Second): // refused once, waiting for room
	}
	// The next offer of the copy is held, then room is made.
	frozen := proxy.FreezeOn(releaseMark + strconv.FormatUint(r.seq, 10))
	select {
	case <-frozen:
	case <-time.After(20 * time.Second):
		t.Fatal("the copy was never offered again")
	}
	nc, err := nats.Connect(srv.NATS().ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	s, err := js.Stream(ctx, r.q.stream)
	require.NoError(t, err)
	require.NoError(t, s.DeleteMsg(ctx, other)) // room for the copy

	// The network comes back once the wait for room ended (a publish
	// timeout before the lease's end), with time left in the lease.
	wait := time.Until(first.LeaseUntil.Add(-publish + publish/8))
	select {
	case err := <-released:
		t.Fatalf("Release returned while its offer was unanswered: %v", err)
	case <-time.After(wait):
	}
	proxy.Thaw()
	select {
	case err = <-released:
	case <-time.After(20 * time.Second):
		t.Fatal("Release never returned")
	}
	require.NoError(t, err, "the copy is stored: given back")
	dead, err := b.ListDead(ctx, qname, 0)
	require.NoError(t, err)
	require.Empty(t, dead, "a task given back is no dead letter")
	for { // the prefetch buffer may hand out the message deleted for room first
		again := leaseOne(t, b, qname)
		require.NoError(t, b.Ack(ctx, again))
		if again.Task.ID == first.Task.ID {
			break
		}
	}
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, qname)
		return err == nil && st.Ready+st.InFlight+st.Delayed == 0
	}, 10*time.Second, 10*time.Millisecond, "the original is gone: one copy of the task, acked")
}
