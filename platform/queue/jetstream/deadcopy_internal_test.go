package jetstream

import (
	"context"
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
		b, err := New(Params{Config: cfg})
		require.NoError(t, err)
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = b.Close(cctx)
		})
		require.NoError(t, b.Start(ctx))
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
