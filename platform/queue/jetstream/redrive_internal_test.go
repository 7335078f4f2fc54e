package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestRedriveOfATaskThatSucceededSinceIsRefused: a dead letter whose task
// ran again and succeeded afterwards (its key's marker says succeeded: a
// re-drive that stopped before it deleted the dead letter, or a dead
// letter stored by a version that ran its task again) is not re-driven:
// that would run a succeeded task once more. Redrive leaves it listed,
// re-drives the others and says which it left and why. It used to
// re-drive it silently.
func TestRedriveOfATaskThatSucceededSinceIsRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "redrive-done"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "ran", Kind: "k", Queue: qn}, &task.Task{ID: "dead", Kind: "k", Queue: qn}))
	for _, id := range []string{"ran", "dead"} {
		d := leaseOne(t, b, qn)
		require.Equal(t, id, d.Task.ID)
		require.NoError(t, b.DeadLetter(ctx, d, "boom"))
	}
	// "ran" succeeded afterwards: its ack recorded its key so.
	q, err := b.queue(qn)
	require.NoError(t, err)
	require.NoError(t, b.markDone(ctx, q, "ran", true, task.Succeeded, ""))

	n, err := b.Redrive(ctx, qn)
	require.Equal(t, 1, n, "the other dead letter is re-driven")
	require.ErrorIs(t, err, errSucceededSince)
	require.ErrorContains(t, err, "ran")
	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "ran", dead[0].Task.ID, "left listed")
	d := leaseOne(t, b, qn)
	require.Equal(t, "dead", d.Task.ID)
	require.NoError(t, b.Ack(ctx, d))
	lctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_, err = b.Lease(lctx, qn, 1, time.Second)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the succeeded task is not queued again")
}

// TestRedriveThatStopsStillSaysWhatItLeft: a Redrive that stops at a
// dead letter it cannot copy (the work stream full) still names the dead
// letters it left before for a reason of their own (succeeded since):
// the error said only why it stopped, and the API reported every dead
// letter left with that reason, one a full stream did not keep.
func TestRedriveThatStopsStillSaysWhatItLeft(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, MaxMsgs: 1, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "redrive-stops"
	for _, id := range []string{"ran", "dead"} {
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: id, Kind: "k", Queue: qn}))
		d := leaseOne(t, b, qn)
		require.Equal(t, id, d.Task.ID)
		require.NoError(t, b.DeadLetter(ctx, d, "boom"))
	}
	q, err := b.queue(qn)
	require.NoError(t, err)
	require.NoError(t, b.markDone(ctx, q, "ran", true, task.Succeeded, ""))
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "fills", Kind: "k", Queue: qn})) // the stream full

	n, err := b.Redrive(ctx, qn)
	require.Equal(t, 0, n)
	require.ErrorContains(t, err, "maximum messages", "why it stopped")
	require.ErrorIs(t, err, errSucceededSince, "why it left the first")
	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Len(t, dead, 2, "both left")
}
