package jetstream

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// TestRedriveOfADeadLetterBesideItsUnsettledTaskQueuesACopy: a task's
// dead letter was stored and its work message not terminated (a process
// that died between the two, or a term the server lost): the task's own
// message, with the same id and key, is still in the work stream, and is
// no re-driven copy. An operator's Redrive of the dead letter stores a
// copy and counts it. Taken for the dead letter's copy, the dead letter
// was deleted and nothing queued (re-driven 0, no error): once the
// message's settlement finished (the max-deliveries advisory storing the
// dead letter again, a duplicate within the window, then deleting the
// message), the task was neither queued nor dead.
func TestRedriveOfADeadLetterBesideItsUnsettledTaskQueuesACopy(t *testing.T) {
	t.Parallel()
	onEachTestServer(t, Config{AckWait: 5 * time.Second}, func(t *testing.T, cfg Config) {
		ctx := t.Context()
		b := openTestBackend(t, cfg)
		const qn = "redrive-beside-unsettled"
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Key: "k1", Kind: "k", Queue: qn}))
		d := leaseOne(t, b, qn)
		require.NoError(t, StoreDeadOnly(ctx, b, d, "boom"))

		n, err := b.Redrive(ctx, qn, "t1")
		require.NoError(t, err)
		require.Equal(t, 1, n, "the dead letter re-driven: its task's own message is no copy of it")
		found, err := b.FindTasks(ctx, qn, queue.TaskLookup{ID: "t1"})
		require.NoError(t, err)
		require.Len(t, found.Found, 2, "the unsettled message and the re-driven copy")
		dead, err := b.ListDead(ctx, qn, 0)
		require.NoError(t, err)
		require.Empty(t, dead, "the dead letter went with its re-drive")
	})
}

// TestClaimOfADeadLetterOfAnEarlierDeadStreamDoesNotStand: a dead letter
// purged, the dead-letter stream deleted (an operator, a store lost) and
// set up again, whose sequences start over: the next dead letter has the
// purged one's sequence, and so its claim's subject. A Redrive of it
// re-drives it. The purge's claim, still within the duplicate window,
// stood for it: the re-drive was refused, said begun by a purge that
// never touched it.
func TestClaimOfADeadLetterOfAnEarlierDeadStreamDoesNotStand(t *testing.T) {
	t.Parallel()
	onEachTestServer(t, Config{AckWait: 5 * time.Second, DuplicateWindow: time.Minute}, func(t *testing.T, cfg Config) {
		ctx := t.Context()
		b := openTestBackend(t, cfg)
		const qn = "claim-earlier-stream"
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Key: "k1", Kind: "k", Queue: qn}))
		require.NoError(t, b.DeadLetter(ctx, leaseOne(t, b, qn), "boom"))
		n, err := b.Purge(ctx, qn, "t1")
		require.NoError(t, err)
		require.Equal(t, 1, n)

		require.NoError(t, b.js.DeleteStream(ctx, b.names.deadStream()))
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t2", Key: "k2", Kind: "k", Queue: qn}))
		require.NoError(t, b.DeadLetter(ctx, leaseOne(t, b, qn), "boom"))
		dead, err := b.ListDead(ctx, qn, 0)
		require.NoError(t, err)
		require.Len(t, dead, 1)

		n, err = b.Redrive(ctx, qn, "t2")
		require.NoError(t, err, "no purge began on this dead letter")
		require.Equal(t, 1, n)
	})
}
