package jetstream_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

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
