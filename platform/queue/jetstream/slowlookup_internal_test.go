package jetstream

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// slowFirstLookup is a stream of finished keys whose first marker lookup
// takes delay (a loaded server or process); the later ones do not.
type slowFirstLookup struct {
	jetstream.Stream
	delay time.Duration
	slow  atomic.Bool
}

func (s *slowFirstLookup) GetLastMsgForSubject(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	if s.slow.CompareAndSwap(false, true) {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Stream.GetLastMsgForSubject(ctx, subject)
}

// TestADeliveryWhoseLookupsOutlastItsAckWaitIsNotHandedOut: Lease looks
// up the finished-key marker of a task delivered again before it hands
// it out; taken from the buffer and not tracked yet, nothing renews the
// message meanwhile. Here the lookup takes two AckWaits: the server's
// AckWait runs out and it delivers the task again. The delivery that
// waited for the lookup used to be handed out all the same (its AckWait
// was only checked before the lookup), and the server's next delivery
// beside it: the task ran twice at once, and the first one's Ack failed
// as a lost lease (TestBufferDoesNotOutliveAPartition under load, whose
// lookups took that long). Only the server's next delivery is handed out
// now, and the one that ran out is no attempt.
func TestADeliveryWhoseLookupsOutlastItsAckWaitIsNotHandedOut(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const (
		qname   = "slowlookup"
		ackWait = time.Second
	)
	b := openTestBackend(t, Config{AckWait: ackWait, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t", Key: "k-1", Kind: "k", Queue: qname}))
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	ds, err := b.Lease(lctx, qname, 1, 0) // a lease of one AckWait, not settled: the server delivers it again
	cancel()
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, 1, ds[0].Task.Attempt)
	b.done = &slowFirstLookup{Stream: b.done, delay: 2 * ackWait}

	lctx, cancel = context.WithTimeout(ctx, 20*time.Second)
	ds, err = b.Lease(lctx, qname, 1, 30*time.Second)
	cancel()
	require.NoError(t, err)
	require.Len(t, ds, 1)
	d := ds[0]
	require.Equal(t, 2, d.Task.Attempt, "the delivery whose AckWait ran out during its lookup is no attempt")

	lctx, cancel = context.WithTimeout(ctx, 3*ackWait)
	again, err := b.Lease(lctx, qname, 1, 30*time.Second)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "handed out again while its first delivery runs: %v", again)
	require.NoError(t, b.Ack(ctx, d), "the delivery handed out holds its lease")
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, qname)
		return err == nil && st.Ready+st.InFlight+st.Delayed+st.Dead == 0
	}, 10*time.Second, 20*time.Millisecond, "acked")
}
