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

// TestRedriveWhoseCopyIsUnansweredSaysItMayBeQueued: a Redrive whose
// publish of a dead letter's copy got no answer (the network held it:
// the server stores it later) stops there, and reports that dead letter
// with a queue.DeadLetterError of its own wrapping
// queue.ErrOutcomeUnknown: its task may be queued again, and here is.
// The stop alone was its reason, which says the dead letters it names
// were not re-driven, and the control API answered "not done" for a
// task that runs.
func TestRedriveWhoseCopyIsUnansweredSaysItMayBeQueued(t *testing.T) {
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
	const qn, marker = "redrive-unanswered", "held-by-the-net-on-its-redrive"
	tk := &task.Task{ID: "held", Kind: "k", Queue: qn, Payload: []byte(marker)}
	require.NoError(t, b.Enqueue(ctx, tk))
	d := jetstream.LeaseOne(t, b, qn)
	require.Equal(t, tk.ID, d.Task.ID)
	require.NoError(t, b.DeadLetter(ctx, d, "boom"))

	frozen := proxy.FreezeOn(marker)
	n, err := b.Redrive(ctx, qn, tk.ID)
	select {
	case <-frozen:
	default:
		t.Fatal("the copy's publish never reached the network")
	}
	proxy.Thaw()
	require.Error(t, err)
	require.Equal(t, 0, n)
	var dl *queue.DeadLetterError
	require.True(t, errors.As(err, &dl), "reported with its own reason: %v", err)
	require.Equal(t, tk.ID, dl.ID)
	require.ErrorIs(t, dl, queue.ErrOutcomeUnknown)

	d = jetstream.LeaseOne(t, b, qn)
	require.Equal(t, tk.ID, d.Task.ID, "its copy was stored after all: its task is queued again")
	require.NoError(t, b.Ack(ctx, d))
}
