package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// A task with a generated key that succeeded on its last attempt
// (queue.Delivery.Last) and whose ack was lost (a process or an embedded
// server killed after the marker) is not handed out again: it would come
// back past its last attempt, and the pool would dead-letter a task that
// succeeded, its source told a second, different outcome. Ack records the
// marker for it on the last attempt only (before: never), and its
// redelivery finds it (before: only keyed tasks looked).
func TestKeylessTaskAckedOnItsLastAttemptIsNotHandedOutAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	q, err := b.queue("last")
	require.NoError(t, err)
	lease := func(wait time.Duration) []*queue.Delivery {
		lctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		ds, err := b.Lease(lctx, "last", 2, time.Second)
		if lctx.Err() == nil {
			require.NoError(t, err)
		}
		return ds
	}
	leaseOne := func() *queue.Delivery {
		var ds []*queue.Delivery
		for len(ds) == 0 {
			ds = lease(10 * time.Second)
		}
		require.Len(t, ds, 1)
		require.False(t, ds[0].Receipt.(*receipt).keyed, "the key is generated")
		return ds[0]
	}
	enqueue := func() {
		tk := &task.Task{Kind: "k", Queue: "last"}
		tk.Prepare(time.Now()) // as the producer does: the key generated
		require.NoError(t, b.Enqueue(ctx, tk))
	}
	marker := func(key string) (uint64, bool) {
		seq, ok, err := b.doneMarker(ctx, q, key)
		require.NoError(t, err)
		return seq, ok
	}

	// Not the last attempt: the ack alone, no marker.
	enqueue()
	d := leaseOne()
	require.NoError(t, b.Ack(ctx, d))
	seq, _ := marker(d.Task.Key)
	require.Zero(t, seq, "a marker for a generated key before the last attempt")

	// The last attempt: the marker, then the ack.
	enqueue()
	d = leaseOne()
	d.Last = true
	require.NoError(t, b.Ack(ctx, d))
	require.Eventually(t, func() bool { seq, ok := marker(d.Task.Key); return seq > 0 && ok },
		5*time.Second, 10*time.Millisecond, "no marker for a success on the last attempt")

	// The last attempt's settlement cut short after its marker: past the
	// AckWait the server delivers the task again, and it is not handed out.
	enqueue()
	d = leaseOne()
	require.NoError(t, b.markDone(ctx, q, d.Task.Key, task.Succeeded, ""))
	require.Empty(t, lease(3*time.Second), "a task that succeeded on its last attempt handed out again")
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, "last")
		return err == nil && st.Ready+st.InFlight+st.Delayed+st.Dead == 0
	}, 10*time.Second, 20*time.Millisecond, "the queue is empty, no dead letter")
}
