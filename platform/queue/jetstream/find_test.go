package jetstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// A task enqueued without a key (its key is its id, stored in the
// message's Nats-Msg-Id only) is found by its id and by its key, ready
// and in flight.
func TestFindTasksKeyless(t *testing.T) {
	t.Parallel()
	b := openBackend(t, jetstream.Config{Mode: jetstream.ModeEmbedded, AckWait: time.Minute,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	ctx := context.Background()
	const q = "find-keyless"
	tk := &task.Task{Kind: "k", Queue: q, Payload: []byte("{}")}
	require.NoError(t, b.Enqueue(ctx, tk))
	require.Equal(t, tk.ID, tk.Key)

	for _, l := range []queue.TaskLookup{{ID: tk.ID}, {Key: tk.ID}} {
		s, err := b.FindTasks(ctx, q, l)
		require.NoError(t, err)
		require.Len(t, s.Found, 1, "lookup %+v", l)
		require.Equal(t, queue.StateReady, s.Found[0].State)
		require.Equal(t, tk.ID, s.Found[0].Task.ID)
	}

	ds, err := b.Lease(ctx, q, 1, time.Minute)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	s, err := b.FindTasks(ctx, q, queue.TaskLookup{ID: tk.ID})
	require.NoError(t, err)
	require.Len(t, s.Found, 1)
	require.Equal(t, queue.StateInFlight, s.Found[0].State)
	require.NoError(t, b.Ack(ctx, ds[0]))
}

// A task retried with a delay is delayed until its due time; once it is
// delivered again, it is in flight (not delayed at a time gone by).
func TestFindTasksRetriedThenRedelivered(t *testing.T) {
	t.Parallel()
	b := openBackend(t, jetstream.Config{Mode: jetstream.ModeEmbedded, AckWait: time.Minute,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	ctx := context.Background()
	const q = "find-retried"
	tk := &task.Task{Kind: "k", Queue: q, Key: "retried-1", Payload: []byte("{}")}
	require.NoError(t, b.Enqueue(ctx, tk))
	ds, err := b.Lease(ctx, q, 1, time.Minute)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	due := time.Now().Add(1500 * time.Millisecond)
	require.NoError(t, b.Retry(ctx, ds[0], due))

	s, err := b.FindTasks(ctx, q, queue.TaskLookup{ID: tk.ID})
	require.NoError(t, err)
	require.Len(t, s.Found, 1)
	require.Equal(t, queue.StateDelayed, s.Found[0].State)

	var again []*queue.Delivery
	deadline := time.Now().Add(20 * time.Second)
	for len(again) == 0 && time.Now().Before(deadline) {
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		again, err = b.Lease(lctx, q, 1, time.Minute)
		cancel()
		if err != nil && lctx.Err() == nil {
			require.NoError(t, err)
		}
	}
	require.Len(t, again, 1, "redelivered after its delay")
	s, err = b.FindTasks(ctx, q, queue.TaskLookup{ID: tk.ID})
	require.NoError(t, err)
	require.Len(t, s.Found, 1)
	require.Equal(t, queue.StateInFlight, s.Found[0].State, "due %s, found %+v", due, s.Found[0])
	require.NoError(t, b.Ack(ctx, again[0]))
}
