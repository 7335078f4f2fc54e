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

// TestRedriveThatStopsAfterACopySaysItsTaskIsQueued: a Redrive that
// stored a dead letter's copy and then could not delete the dead letter
// (here the dead-letter stream denies deletes) stops there, and reports
// that dead letter with a queue.DeadLetterError of its own saying its
// task is queued again: the stop alone was every unreached dead
// letter's reason too, "not re-driven", and the API answered "not done"
// for a task that runs. The dead letter after it, not reached, is
// reported by the stop alone.
func TestRedriveThatStopsAfterACopySaysItsTaskIsQueued(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "redrive-stops-after-copy"
	for _, id := range []string{"copied", "unreached"} {
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: id, Kind: "k", Queue: qn}))
		d := leaseOne(t, b, qn)
		require.Equal(t, id, d.Task.ID)
		require.NoError(t, b.DeadLetter(ctx, d, "boom"))
	}
	s, err := b.js.Stream(ctx, b.names.deadStream())
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	cfg.DenyDelete = true
	_, err = b.js.UpdateStream(ctx, cfg)
	require.NoError(t, err)

	n, err := b.Redrive(ctx, qn)
	require.Error(t, err)
	require.Equal(t, 0, n, "no dead letter re-driven whole")
	left, stop := leftAndStop(err)
	require.Equal(t, []string{"copied"}, left, "the dead letter whose copy was stored, reported with its own reason: %v", err)
	require.ErrorIs(t, err, errLeftBesideCopy)
	require.ErrorContains(t, stop, "stopped at task copied", "why the call stopped, the reason of the one not reached")

	found, err := b.FindTasks(ctx, qn, queue.TaskLookup{ID: "copied"})
	require.NoError(t, err)
	queued := 0
	for _, f := range found.Found {
		if f.State != queue.StateDead { // ready, or prefetched (in flight)
			queued++
		}
	}
	require.Equal(t, 1, queued, "its copy is queued, as reported: %+v", found.Found)
	found, err = b.FindTasks(ctx, qn, queue.TaskLookup{ID: "unreached"})
	require.NoError(t, err)
	for _, f := range found.Found {
		require.Equal(t, queue.StateDead, f.State, "not reached: only its dead letter")
	}
}
