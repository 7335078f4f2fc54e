package jetstream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
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
	left, stop := leftAndStop(err)
	require.Equal(t, []string{"ran"}, left, "reported with its own queue.DeadLetterError")
	require.NoError(t, stop)
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
	left, stop := leftAndStop(err)
	require.Equal(t, []string{"ran"}, left, "the one left for a reason of its own, reported with its queue.DeadLetterError")
	require.ErrorContains(t, stop, "maximum messages", "the stop, no dead letter's own reason")
	require.ErrorContains(t, stop, "stopped at task dead")
	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Len(t, dead, 2, "both left")
}

// leftAndStop splits err, what a Redrive or Purge answered, into the ids
// of the dead letters it reports left for a reason of their own (each
// part of the joined error that is a queue.DeadLetterError) and the rest
// (why it stopped; nil when it did not).
func leftAndStop(err error) (left []string, stop error) {
	parts := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts = j.Unwrap()
	}
	var rest []error
	for _, p := range parts {
		var dl *queue.DeadLetterError
		if errors.As(p, &dl) {
			left = append(left, dl.ID)
		} else if p != nil {
			rest = append(rest, p)
		}
	}
	return left, errors.Join(rest...)
}
