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
	"github.com/plba/plba/platform/queue"
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
	const publish = 4 * time.Second
	f := startFrozenRelease(t, "release-unanswered", publish, 12*time.Second, 20*time.Second)
	// The network comes back once the wait for room ended (a publish
	// timeout before the lease's end), with time left in the lease.
	wait := time.Until(f.first.LeaseUntil.Add(-publish + publish/8))
	select {
	case err := <-f.released:
		t.Fatalf("Release returned while its offer was unanswered: %v", err)
	case <-time.After(wait):
	}
	f.proxy.Thaw()
	var err error
	select {
	case err = <-f.released:
	case <-time.After(20 * time.Second):
		t.Fatal("Release never returned")
	}
	require.NoError(t, err, "the copy is stored: given back")
	ctx := t.Context()
	dead, err := f.b.ListDead(ctx, f.q, 0)
	require.NoError(t, err)
	require.Empty(t, dead, "a task given back is no dead letter")
	f.ackCopy(t)
}

// TestReleaseWhoseLastCopyGoesUnansweredTwiceIsNoDeadLetter: as above,
// but the network stays frozen through the second ask of the copy too,
// and comes back only as the lease ends: whether the copy is stored, the
// Release cannot tell. It leaves the delivery to the server, with an
// error that says so and is no queue.ErrDeadLettered; the message's
// max-deliveries advisory finds the copy queued and deletes the message,
// storing no dead letter; the copy runs. Release dead-lettered the task
// (queue.ErrDeadLettered, its source told so) while its copy was queued,
// to run; the advisory too would have dead-lettered it.
func TestReleaseWhoseLastCopyGoesUnansweredTwiceIsNoDeadLetter(t *testing.T) {
	t.Parallel()
	const publish = 6 * time.Second
	f := startFrozenRelease(t, "release-unanswered-twice", publish, 16*time.Second, 25*time.Second)
	// Frozen until the second ask, given half of the publish timeout
	// left, went unanswered too, but before the lease ends.
	wait := time.Until(f.first.LeaseUntil.Add(-publish / 4))
	var err error
	returned := false
	select {
	case err = <-f.released: // it may give up while frozen
		returned = true
	case <-time.After(wait):
	}
	f.proxy.Thaw()
	if !returned {
		select {
		case err = <-f.released:
		case <-time.After(20 * time.Second):
			t.Fatal("Release never returned")
		}
	}
	require.NotErrorIs(t, err, queue.ErrDeadLettered, "its copy may be queued")
	require.ErrorIs(t, err, errCopyUnanswered)
	require.Contains(t, err.Error(), "left to the server")
	ctx := t.Context()
	dead, err := f.b.ListDead(ctx, f.q, 0)
	require.NoError(t, err)
	require.Empty(t, dead, "its copy may be queued: no dead letter")

	// The server delivers the message no more; its advisory, after the
	// AckWait, finds the copy queued and deletes it.
	require.Eventually(t, func() bool {
		_, err := f.srvStream.GetMsg(ctx, f.seq)
		return isMsgNotFound(err)
	}, 60*time.Second, 100*time.Millisecond, "the message given back is handled by its max-deliveries advisory")
	dead, err = f.b.ListDead(ctx, f.q, 0)
	require.NoError(t, err)
	require.Empty(t, dead, "its copy is queued: no dead letter")
	f.ackCopy(t)
}

// frozenRelease is a Release on the last delivery max_deliver allows,
// in a work stream full with two tasks, whose copy's offer after the
// first refusal is frozen on its way to the server; room is made then
// (the other task's message deleted).
type frozenRelease struct {
	b         *Backend
	q         string
	proxy     *netfault.Proxy
	first     *queue.Delivery
	seq       uint64 // first's message
	srvStream jetstream.Stream
	released  chan error // Release's result
}

func startFrozenRelease(t *testing.T, q string, publish, lease, ackWait time.Duration) *frozenRelease {
	t.Helper()
	ctx := t.Context()
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(ctx, opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	f := &frozenRelease{q: q, proxy: netfault.NewProxy(t, srv.NATS().Addr().String()), released: make(chan error, 1)}
	f.b = openTestBackend(t, Config{URLs: []string{"nats://" + f.proxy.Addr()}, MaxMsgs: 2, MaxDeliver: 1,
		AckWait: ackWait, PublishTimeout: publish, Prefetch: 1, MaxPrefetch: 1})
	require.NoError(t, f.b.Enqueue(ctx, &task.Task{ID: "a", Kind: "k", Queue: q}, &task.Task{ID: "b", Kind: "k", Queue: q}))
	f.first = leaseOne(t, f.b, q)
	require.NoError(t, f.b.Extend(ctx, f.first, lease))
	r, err := f.b.receiptOf(f.first)
	require.NoError(t, err)
	f.seq = r.seq
	other := uint64(1)
	if r.seq == 1 {
		other = 2
	}

	go func() { f.released <- f.b.Release(ctx, f.first) }()
	select {
	case err := <-f.released:
		t.Fatalf("Release returned while the stream was full: %v", err)
	case <-time.After(time.Second): // refused once, waiting for room
	}
	// The next offer of the copy is held, then room is made.
	frozen := f.proxy.FreezeOn(releaseMark + strconv.FormatUint(r.seq, 10))
	select {
	case <-frozen:
	case <-time.After(20 * time.Second):
		t.Fatal("the copy was never offered again")
	}
	nc, err := nats.Connect(srv.NATS().ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	f.srvStream, err = js.Stream(ctx, r.q.stream)
	require.NoError(t, err)
	require.NoError(t, f.srvStream.DeleteMsg(ctx, other)) // room for the copy
	return f
}

// ackCopy leases the released task's copy and acks it, and checks that
// the work stream is empty then: one copy of the task, acked.
func (f *frozenRelease) ackCopy(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	for { // the prefetch buffer may hand out the message deleted for room first
		again := leaseOne(t, f.b, f.q)
		require.NoError(t, f.b.Ack(ctx, again))
		if again.Task.ID == f.first.Task.ID {
			break
		}
	}
	require.Eventually(t, func() bool {
		st, err := f.b.Stats(ctx, f.q)
		return err == nil && st.Ready+st.InFlight+st.Delayed == 0
	}, 10*time.Second, 10*time.Millisecond, "the original is gone: one copy of the task, acked")
}

// TestAReleasedCopyDeletesTheMessageItCopies: a Release on the last
// delivery max_deliver allows stored its copy, but the message it copies
// stays (the Release could not tell that the copy was stored and left the
// delivery to the server, or its ack was lost). The copy is delivered,
// runs and is acked before that message's max-deliveries advisory: its
// delivery deletes the message, so that the advisory, which finds no
// copy queued any more, does not dead-letter the task that ran. The
// message stayed, and the advisory dead-lettered the task after its copy
// had succeeded.
func TestAReleasedCopyDeletesTheMessageItCopies(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{MaxDeliver: 1, AckWait: 2 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "release-copy-first"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t", Kind: "k", Queue: qn}))
	d := leaseOne(t, b, qn)
	r, err := b.receiptOf(d)
	require.NoError(t, err)
	// The Release's record and copy, as release makes them; the message
	// is not acked.
	require.NoError(t, b.markDone(ctx, r.q, d.Task.Key, r.keyed, task.Returned, ""))
	_, err = b.js.PublishMsg(ctx, encodeTask(d.Task, msgSpec{subject: r.q.subject,
		msgID: msgIDOf(d.Task.Key, !r.keyed) + releaseMark + strconv.FormatUint(r.seq, 10), keyed: r.keyed, attempts: r.attempt - 1}))
	require.NoError(t, err)

	c := leaseOne(t, b, qn)
	require.Equal(t, "t", c.Task.ID)
	require.NoError(t, b.Ack(ctx, c))
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, qn)
		return err == nil && st.Ready+st.InFlight+st.Delayed == 0
	}, 20*time.Second, 10*time.Millisecond, "the message copied is gone: deleted, or dead-lettered by its advisory")
	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Empty(t, dead, "the task ran, as its copy")
}
