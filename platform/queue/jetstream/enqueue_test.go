package jetstream_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
)

// TestEnqueueReportsLostAcks: when the stream behind the queue's subject
// stops acknowledging (here another stream, without acks, took the
// subject over after the queue's stream was deleted), every task of a
// batch fails through the async publish error callback and is reported in
// the EnqueueError, in order, as not confirmed stored.
func TestEnqueueReportsLostAcks(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	b := openBackend(t, jetstream.Config{URL: srv.ClientURL(), AckWait: time.Second, PublishTimeout: time.Second})
	ctx := t.Context()
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "lost"}))

	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	require.NoError(t, js.DeleteStream(ctx, "PLBA_Q_lost"))
	_, err = js.CreateStream(ctx, njs.StreamConfig{Name: "SILENT", Subjects: []string{jetstream.WorkSubject(t, b, "lost")}, NoAck: true})
	require.NoError(t, err)

	tasks := []*task.Task{{Kind: "k", Queue: "lost"}, {Kind: "k", Queue: "lost"}, {Kind: "k", Queue: "lost"}}
	err = b.Enqueue(ctx, tasks...)
	var ee *jetstream.EnqueueError
	require.True(t, errors.As(err, &ee), "got %v", err)
	require.Len(t, ee.Failed, 3)
	require.Equal(t, 3, ee.Total)
	require.ErrorContains(t, err, "not confirmed stored")
	for i, f := range ee.Failed {
		require.Equal(t, tasks[i].ID, f.ID)
		require.Error(t, f.Err)
	}
}

// TestEnqueueSetsADeletedStreamUpAgain: a work stream deleted behind the
// backend's back (a server that lost its store, an operator's stream
// removal) is set up again by the next Enqueue, whose tasks are then
// stored (no stream answered their publish, so none was stored before)
// and delivered. No pool leases from it here (a host that only
// produces): nothing else would set it up again.
func TestEnqueueSetsADeletedStreamUpAgain(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	b := openBackend(t, jetstream.Config{URL: srv.ClientURL(), AckWait: time.Second, PublishTimeout: 5 * time.Second})
	ctx := t.Context()
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "before", Kind: "k", Queue: "gone"}))

	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	require.NoError(t, js.DeleteStream(ctx, "PLBA_Q_gone"))

	tasks := []*task.Task{{Kind: "k", Queue: "gone"}, {Kind: "k", Queue: "gone"}, {Kind: "k", Queue: "gone"}}
	require.NoError(t, b.Enqueue(ctx, tasks...))
	s, err := js.Stream(ctx, "PLBA_Q_gone")
	require.NoError(t, err, "the stream is set up again")
	require.EqualValues(t, 3, s.CachedInfo().State.Msgs)

	seen := map[string]bool{}
	for len(seen) < len(tasks) {
		d := jetstream.LeaseOne(t, b, "gone")
		seen[d.Task.ID] = true
		require.NoError(t, b.Ack(ctx, d))
	}
	for _, tk := range tasks {
		require.True(t, seen[tk.ID], "task %s delivered", tk.ID)
	}
}
