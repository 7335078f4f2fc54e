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

// TestACopyRunDuringTheAdvisorysScanIsNoDeadLetter: a Release on the last
// delivery max_deliver allows stored its copy and left the message it
// copies to the server. That message's max-deliveries advisory reads it,
// then reads the work stream for the copy; meanwhile the copy is
// delivered (which deletes the message it copies), runs and is acked
// (which deletes the copy): the scan finds no copy. The task succeeded,
// as its copy: no dead letter. The advisory dead-lettered it, and told
// its source so, after its copy had succeeded.
func TestACopyRunDuringTheAdvisorysScanIsNoDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(ctx, opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	proxy := netfault.NewProxy(t, srv.NATS().Addr().String())
	b := openTestBackend(t, Config{URLs: []string{"nats://" + proxy.Addr()}, MaxDeliver: 1,
		AckWait: 2 * time.Second, PublishTimeout: 20 * time.Second, Prefetch: 1, MaxPrefetch: 1})
	if !b.multiGet {
		t.Skip("the scan is frozen on a batched direct get: a server from 2.11 on")
	}
	const qn = "release-copy-during-scan"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t", Kind: "k", Queue: qn}))
	d := leaseOne(t, b, qn)
	r, err := b.receiptOf(d)
	require.NoError(t, err)
	// The Release's record and copy, as release makes them; the message
	// is left to the server.
	require.NoError(t, b.markDone(ctx, r.q, d.Task.Key, r.keyed, task.Returned, ""))
	ack, err := b.js.PublishMsg(ctx, encodeTask(d.Task, msgSpec{subject: r.q.subject,
		msgID: msgIDOf(d.Task.Key, !r.keyed) + releaseMark + strconv.FormatUint(r.seq, 10), keyed: r.keyed, attempts: r.attempt - 1}))
	require.NoError(t, err)

	// The advisory's scan for the copy is held on its way to the server.
	frozen := proxy.FreezeOn(`"batch":` + strconv.Itoa(findBatch) + `,"max_bytes"`)
	select {
	case <-frozen:
	case <-time.After(60 * time.Second):
		t.Fatal("the advisory never looked for the copy")
	}
	// Meanwhile the copy is delivered, deleting the message it copies
	// (dropReleased), runs and is acked (the work-queue stream deletes
	// it): done here on a connection of its own.
	nc, err := nats.Connect(srv.NATS().ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	work, err := js.Stream(ctx, r.q.stream)
	require.NoError(t, err)
	require.NoError(t, work.DeleteMsg(ctx, r.seq))
	require.NoError(t, work.DeleteMsg(ctx, ack.Sequence))
	proxy.Thaw()

	// The advisory is handled (acknowledged: its work-queue stream
	// deletes it).
	adv, err := js.Stream(ctx, b.names.advisoryStream())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := adv.Info(ctx)
		return err == nil && info.State.Msgs == 0
	}, 60*time.Second, 50*time.Millisecond, "the advisory is handled")
	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Empty(t, dead, "the task ran, as its copy")
}

// TestAnotherTaskWhoseKeyLooksLikeACopyIsNoCopy: the max-deliveries
// advisory of a message whose key was recorded as released looks for the
// Release's copy in the work stream by its Nats-Msg-Id: the key,
// "-release-", a sequence. Another task whose key is the first's with
// "-release-" and more (its own Nats-Msg-Id) is no copy of it: the task
// is dead-lettered. It was taken for the copy: the message was deleted,
// and the task lost, with no dead letter and no copy.
func TestAnotherTaskWhoseKeyLooksLikeACopyIsNoCopy(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{MaxDeliver: 1, AckWait: 2 * time.Second, Prefetch: 1, MaxPrefetch: 1,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "release-copy-lookalike"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t", Key: "order-7", Kind: "k", Queue: qn}))
	d := leaseOne(t, b, qn)
	r, err := b.receiptOf(d)
	require.NoError(t, err)
	// A Release's record, its copy never stored; the message is left to
	// the server. Another task's key begins with the copy's Nats-Msg-Id.
	require.NoError(t, b.markDone(ctx, r.q, d.Task.Key, r.keyed, task.Returned, ""))
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "other", Key: "order-7" + releaseMark + "notes", Kind: "k", Queue: qn}))

	require.Eventually(t, func() bool {
		dead, err := b.ListDead(ctx, qn, 0)
		return err == nil && len(dead) == 1 && dead[0].Task.ID == "t"
	}, 60*time.Second, 50*time.Millisecond, "the task, whose copy was never stored, is dead-lettered")
}
