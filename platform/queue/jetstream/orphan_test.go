package jetstream_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
)

// closeBackend closes b within 10 s.
func closeBackend(t *testing.T, b *jetstream.Backend) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.Close(ctx))
}

// A process that dies (or a server that stops) between recording a
// consumer's ack and deleting the acked message from the work stream
// leaves the message stored at or below the consumer's ack floor. The
// server never delivers it again and, for a work-queue stream, does not
// remove it at restart (it does so only for interest retention). The
// store is built here as such a crash leaves it: the work stream's files
// from before the ack, the consumer's from after. The backend removes the
// acked message when it opens the queue: Stats counts nothing left, and
// a new task is still delivered.
func TestAckedMessageLeftByACrashIsRemoved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := embeddedConfig(dir)
	ctx := t.Context()

	b, err := jetstream.Open(ctx, jetstream.Params{Config: cfg})
	require.NoError(t, err)
	tk := &task.Task{ID: "t-1", Key: "order-1", Kind: "k", Queue: "orph", Payload: []byte("p")}
	tk.Prepare(time.Now())
	require.NoError(t, b.Enqueue(ctx, tk))
	_, err = b.Stats(ctx, "orph")
	require.NoError(t, err)
	closeBackend(t, b)
	streams := filepath.Join(dir, "jetstream", "$G", "streams", jetstream.DefaultStreamPrefix+"_Q_orph")
	before := filepath.Join(t.TempDir(), "msgs")
	require.NoError(t, os.CopyFS(before, os.DirFS(filepath.Join(streams, "msgs"))))

	b, err = jetstream.Open(ctx, jetstream.Params{Config: cfg})
	require.NoError(t, err)
	d := leaseOne(t, b, "orph")
	require.NoError(t, b.Ack(ctx, d))
	closeBackend(t, b)

	require.NoError(t, os.RemoveAll(filepath.Join(streams, "msgs")))
	require.NoError(t, os.CopyFS(filepath.Join(streams, "msgs"), os.DirFS(before)))

	b = openBackend(t, cfg)
	work, err := b.JetStream().Stream(ctx, jetstream.DefaultStreamPrefix+"_Q_orph")
	require.NoError(t, err)
	require.EqualValues(t, 1, work.CachedInfo().State.Msgs, "the store holds the acked task as a crash leaves it")
	st, err := b.Stats(ctx, "orph")
	require.NoError(t, err)
	require.Zero(t, st.Ready+st.InFlight+st.Delayed+st.Dead, "an acked task is not counted: %+v", st)
	tk2 := &task.Task{ID: "t-2", Key: "order-2", Kind: "k", Queue: "orph", Payload: []byte("p")}
	tk2.Prepare(time.Now())
	require.NoError(t, b.Enqueue(ctx, tk2))
	d = leaseOne(t, b, "orph")
	require.Equal(t, "t-2", d.Task.ID, "the acked task does not run again")
	require.NoError(t, b.Ack(ctx, d))
	require.Eventually(t, func() bool {
		info, err := work.Info(ctx)
		require.NoError(t, err)
		return info.State.Msgs == 0
	}, 5*time.Second, 20*time.Millisecond, "the acked task left by the crash is removed when the queue opens")
	st, err = b.Stats(ctx, "orph")
	require.NoError(t, err)
	require.Equal(t, queue.Stats{Queue: "orph"}, st)
}

// A task whose last delivery's lease ran out (its process died holding
// it) stays in the work stream, undelivered, until its max-deliveries
// advisory is handled. A process that opens the queue before that (no
// host ran meanwhile, or one starts while another handles it), while
// later tasks were acked, must not take it for an acked task a crash left
// (dropAcked): the server keeps the ack floor below it (nats-server
// 2.15), and it is dead-lettered from its advisory, its watcher told.
func TestExhaustedTaskPastTheAckFloorIsDeadLettered(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	cfg := jetstream.Config{URL: srv.ClientURL(), MaxDeliver: 1, AckWait: 300 * time.Millisecond}
	ctx := t.Context()
	a := openBackend(t, cfg)
	tk := &task.Task{ID: "t-1", Key: "order-1", Kind: "k", Queue: "exh", Payload: []byte("p")}
	tk.Prepare(time.Now())
	require.NoError(t, a.Enqueue(ctx, tk))
	require.NoError(t, a.Enqueue(ctx, &task.Task{ID: "t-2", Key: "order-2", Kind: "k", Queue: "exh"}))
	closeBackend(t, a)

	// A process takes the first task's only delivery and dies with it:
	// nothing settles it, and the server gives up on the task once its
	// lease ran out, with nobody reading the advisory it captures. The
	// second task, acked, moves the ack floor over the first.
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	c, err := js.Consumer(ctx, jetstream.DefaultStreamPrefix+"_Q_exh", jetstream.DefaultConsumer)
	require.NoError(t, err)
	batch, err := c.Fetch(2, njs.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var got []njs.Msg
	for m := range batch.Messages() {
		got = append(got, m)
	}
	require.Len(t, got, 2, "each task's one delivery")
	require.NoError(t, got[1].DoubleAck(ctx))
	waitFor(t, 20*time.Second, "the server to give up on the task", func() bool {
		s, err := js.Stream(ctx, jetstream.DefaultStreamPrefix+"_ADV_"+jetstream.DefaultConsumer)
		return err == nil && s.CachedInfo().State.Msgs == 1
	})

	b := openBackend(t, cfg)
	require.NoError(t, b.Declare(ctx, "exh"))
	told := make(chan queue.DeadLetter, 4)
	b.WatchDead(func(dl queue.DeadLetter) { told <- dl })
	select {
	case dl := <-told:
		require.Equal(t, "t-1", dl.Task.ID)
		require.Contains(t, dl.Reason, "max deliveries")
	case <-time.After(20 * time.Second):
		t.Fatal("the exhausted task was never dead-lettered: removed as acked when the queue was opened")
	}
	// The acked task's message is not the test's: the server deletes it.
	dead, err := b.ListDead(ctx, "exh", 10)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "t-1", dead[0].Task.ID)
}
