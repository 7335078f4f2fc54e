package jetstream

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestExpiredUnsettledReceiptsAreForgotten: deliveries whose lease ran out
// without a settlement (a hung handler, a delivery the pool skipped) are
// not tracked, message and payload included, until Close.
func TestExpiredUnsettledReceiptsAreForgotten(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{Mode: ModeEmbedded, MaxDeliver: -1, AckWait: 300 * time.Millisecond,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const n = 20
	for range n {
		require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "leak", Payload: make([]byte, 64<<10)}))
	}
	for got := 0; got < n; { // first deliveries: never settled
		ds, err := b.Lease(ctx, "leak", n, 100*time.Millisecond)
		require.NoError(t, err)
		got += len(ds)
	}
	for acked := 0; acked < n; { // the redeliveries: acked
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		ds, err := b.Lease(lctx, "leak", n, 10*time.Second)
		cancel()
		require.NoError(t, err)
		for _, d := range ds {
			require.Equal(t, 2, d.Task.Attempt)
			require.NoError(t, b.Ack(ctx, d))
			acked++
		}
	}
	require.Eventually(t, func() bool {
		b.imu.Lock()
		defer b.imu.Unlock()
		return len(b.inflight) == 0
	}, 10*time.Second, 10*time.Millisecond, "every task is acked; the expired receipts must be gone too")
}

// TestSlowSettlementDoesNotStopLeaseRenewal: while one delivery's
// settlement holds its receipt (a Release or dead-letter publish during a
// reconnect), the lease keeper still renews every other lease, so their
// tasks are not redelivered while their handlers run.
func TestSlowSettlementDoesNotStopLeaseRenewal(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{Mode: ModeEmbedded, AckWait: 400 * time.Millisecond,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "keep", Payload: []byte("1")},
		&task.Task{Kind: "k", Queue: "keep", Payload: []byte("2")}))
	var ds []*queue.Delivery
	for len(ds) < 2 {
		got, err := b.Lease(ctx, "keep", 2, 30*time.Second) // promised far beyond AckWait
		require.NoError(t, err)
		ds = append(ds, got...)
	}
	r1 := ds[0].Receipt.(*receipt)
	r1.mu.Lock() // "its settlement is publishing"
	locked := true
	unlock := func() {
		if locked {
			locked = false
			r1.mu.Unlock()
		}
	}
	defer unlock() // also when the test fails: Close waits for the keeper
	// Several AckWaits: without renewal the server redelivers task 2.
	lctx, cancel := context.WithTimeout(ctx, 5*400*time.Millisecond)
	defer cancel()
	for {
		again, err := b.Lease(lctx, "keep", 2, time.Second)
		if errors.Is(err, context.DeadlineExceeded) || lctx.Err() != nil {
			break
		}
		require.NoError(t, err)
		for _, d := range again {
			require.NotEqual(t, ds[1].Task.ID, d.Task.ID, "task 2 redelivered (attempt %d) while its lease was promised", d.Task.Attempt)
		}
	}
	unlock()
	require.NoError(t, b.Ack(ctx, ds[1]), "task 2 still holds its lease")
	require.NoError(t, b.Ack(ctx, ds[0]))
}

// TestTooLargeToDeadLetterIsRefused: a task whose dead-letter copy would
// not fit in the server's max_payload is refused at Enqueue (it could
// never leave the queue once its attempts are used up); one that leaves
// the room is accepted and can be dead-lettered with a long reason.
func TestTooLargeToDeadLetterIsRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const maxPayload = 64 << 10
	b := openTestBackend(t, Config{Mode: ModeEmbedded, AckWait: 5 * time.Second,
		Embedded: embedded.Config{StoreDir: t.TempDir(), MaxPayload: maxPayload}})
	err := b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "big", Payload: make([]byte, maxPayload-300)})
	require.ErrorIs(t, err, queue.ErrTooLarge)
	require.ErrorContains(t, err, "dead-letter")

	fits := &task.Task{Kind: "k", Queue: "big", Payload: make([]byte, maxPayload-deadLetterRoom-1024)}
	require.NoError(t, b.Enqueue(ctx, fits))
	ds, err := b.Lease(ctx, "big", 1, 5*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.NoError(t, b.DeadLetter(ctx, ds[0], "handler: "+strings.Repeat("x", 2*maxReason)))
	dead, err := b.ListDead(ctx, "big", 1)
	require.NoError(t, err)
	require.Len(t, dead, 1)
}

// TestIDThatGrowsInItsCopyIsRefused: a task's dead-letter and Release
// copies write its id into their Plba-Task, escaped (three bytes for a
// blank, say), where the original left it to its Nats-Msg-Id; Enqueue
// keeps room for that growth, so a task it accepts can always be
// released and dead-lettered.
func TestIDThatGrowsInItsCopyIsRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const maxPayload = 64 << 10
	b := openTestBackend(t, Config{Mode: ModeEmbedded, AckWait: 5 * time.Second,
		Embedded: embedded.Config{StoreDir: t.TempDir(), MaxPayload: maxPayload}})
	blanks := strings.Repeat("a ", 10<<10) // 20 KiB here, 40 KiB escaped
	err := b.Enqueue(ctx, &task.Task{ID: blanks, Kind: "k", Queue: "grow"})
	require.ErrorIs(t, err, queue.ErrTooLarge, "its dead-letter copy would not fit")

	// The same length without escapes fits; its Release copy (the key in
	// its Nats-Msg-Id, the id in its Plba-Task) is published, not given
	// back with a negative ack that would count the attempt; and it is
	// dead-lettered.
	plain := strings.Repeat("ab", 10<<10)
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: plain, Kind: "k", Queue: "grow"}))
	ds, err := b.Lease(ctx, "grow", 1, 5*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.NoError(t, b.Release(ctx, ds[0]))
	ds, err = b.Lease(ctx, "grow", 1, 5*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, plain, ds[0].Task.ID)
	require.Equal(t, 1, ds[0].Task.Attempt, "released uncounted")
	require.NoError(t, b.DeadLetter(ctx, ds[0], "handler: "+strings.Repeat("x", 2*maxReason)))
	dead, err := b.ListDead(ctx, "grow", 1)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, plain, dead[0].Task.ID)
}
