package jetstream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
)

// An Enqueue whose publish left the client but whose ack never came
// (the network held it: the server gets it later) may have stored the
// task: its error wraps queue.ErrOutcomeUnknown, and the task is indeed
// stored once the network forwards again. Both ways an ack goes missing
// are covered: the backend's publish timeout, and the caller's context
// ending first. A refusal (a task too large, never sent) does not wrap
// it.
func TestEnqueueWithoutAckIsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, proxy := proxiedServer(t)
	cfg := jetstream.Config{URLs: []string{"nats://" + proxy.Addr()}, AckWait: 5 * time.Second, PublishTimeout: time.Second}
	b, err := jetstream.Open(ctx, jetstream.Params{Config: cfg})
	require.NoError(t, err)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(cctx)
	})
	// The queue's streams are set up first, so that only the publish
	// meets the held network.
	require.NoError(t, b.Declare(ctx, "unsure"))

	enqueueHeld := func(marker string, ectx context.Context) (*task.Task, error) {
		frozen := proxy.FreezeOn(marker)
		tk := &task.Task{Kind: "k", Queue: "unsure", Key: marker, Payload: []byte(marker)}
		err := b.Enqueue(ectx, tk)
		select {
		case <-frozen:
		default:
			t.Fatalf("%s: the publish never reached the network", marker)
		}
		proxy.Thaw()
		return tk, err
	}

	// The publish timeout (the ack's error callback).
	tk1, err := enqueueHeld("held-by-the-net-1", ctx)
	require.Error(t, err)
	require.ErrorIs(t, err, queue.ErrOutcomeUnknown, "%v", err)

	// The caller's context ending while the ack is awaited.
	ectx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	tk2, err := enqueueHeld("held-by-the-net-2", ectx)
	cancel()
	require.Error(t, err)
	require.ErrorIs(t, err, queue.ErrOutcomeUnknown, "%v", err)

	// Both were stored after all.
	got := map[string]bool{}
	for range 2 {
		d := leaseOne(t, b, "unsure")
		got[d.Task.ID] = true
		require.NoError(t, b.Ack(ctx, d))
	}
	require.Equal(t, map[string]bool{tk1.ID: true, tk2.ID: true}, got)

	// A refusal is no unknown outcome.
	big := &task.Task{Kind: "k", Queue: "unsure", Payload: make([]byte, b.MaxPayload()+1)}
	err = b.Enqueue(ctx, big)
	require.Error(t, err)
	require.False(t, errors.Is(err, queue.ErrOutcomeUnknown), "%v", err)
}
