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

// TestEnqueueReportsLostAcks: when the stream disappears behind the
// backend's back, every task of a batch fails through the async publish
// error callback (no stream answers) and is reported in the
// EnqueueError, in order.
func TestEnqueueReportsLostAcks(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	b := openBackend(t, jetstream.Config{URL: srv.ClientURL(), AckWait: time.Second, PublishTimeout: 5 * time.Second})
	ctx := t.Context()
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "lost"}))

	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	require.NoError(t, js.DeleteStream(ctx, "PLBA_Q_lost"))

	tasks := []*task.Task{{Kind: "k", Queue: "lost"}, {Kind: "k", Queue: "lost"}, {Kind: "k", Queue: "lost"}}
	err = b.Enqueue(ctx, tasks...)
	var ee *jetstream.EnqueueError
	require.True(t, errors.As(err, &ee), "got %v", err)
	require.Len(t, ee.Failed, 3)
	require.Equal(t, 3, ee.Total)
	for i, f := range ee.Failed {
		require.Equal(t, tasks[i].ID, f.ID)
		require.Error(t, f.Err)
	}
}
