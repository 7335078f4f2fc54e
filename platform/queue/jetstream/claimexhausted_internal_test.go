package jetstream

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// ackLost is a work message whose ack does not reach the server (the
// connection lost at that moment).
type ackLost struct{ jetstream.Msg }

func (ackLost) Ack() error                      { return errors.New("nats: connection closed") }
func (ackLost) DoubleAck(context.Context) error { return errors.New("nats: connection closed") }

// TestAWonClaimOnTheLastDeliveryIsNoDeadLetter: an Ack on the last
// delivery the server makes claims its message as succeeded (claim.go),
// and its ack is lost. The server delivers the message no more; its
// max-deliveries advisory finds the claim and removes the message as the
// success it was: no dead letter, the key's marker still says succeeded,
// and the task's source is told it succeeded (WatchFinished). Before, the
// advisory dead-lettered the task, told its watcher so and wrote the
// key's marker over the claim: the source heard dead_lettered of a task
// whose handler succeeded.
func TestAWonClaimOnTheLastDeliveryIsNoDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 500 * time.Millisecond, MaxDeliver: 1, Prefetch: 1, MaxPrefetch: 1,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	var dead, finished atomic.Int32
	b.WatchDead(func(queue.DeadLetter) { dead.Add(1) })
	b.WatchFinished(func(*task.Task) { finished.Add(1) })
	const qn = "last-claim"
	tk := &task.Task{ID: "t1", Kind: "k", Queue: qn, Key: "order-9"}
	tk.SetHeader(task.HeaderCompletion, "inbox")
	require.NoError(t, b.Enqueue(ctx, tk))
	d := leaseOne(t, b, qn)
	r := d.Receipt.(*receipt)
	r.mu.Lock()
	r.msg = ackLost{r.msg}
	r.mu.Unlock()
	require.Error(t, b.Ack(ctx, d), "the ack did not go out")
	require.Equal(t, task.Succeeded, markerOf(t, b, qn, "order-9"), "the claim is stored")

	// The advisory's handling removes the message.
	q, err := b.queue(qn)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := q.workStream().Info(ctx)
		return err == nil && info.State.Msgs == 0
	}, 30*time.Second, 50*time.Millisecond, "the message is removed")
	require.Eventually(t, func() bool { return finished.Load() == 1 }, 10*time.Second, 10*time.Millisecond,
		"the source is told the task succeeded")
	deadList, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Empty(t, deadList, "no dead letter for a task whose claim says it succeeded")
	require.Zero(t, dead.Load(), "no dead letter told")
	require.Equal(t, task.Succeeded, markerOf(t, b, qn, "order-9"))
}
