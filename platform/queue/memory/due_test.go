package memory_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// TestExtendToAnEarlierEndWakesLeasers: Extend may shorten a lease (now +
// leaseFor before its old end); the backend's timer then wakes blocked
// Lease calls at the new end. It stayed set to the old end: a consumer
// waiting for the task got it only then (an hour here), or when some
// other call happened to look at the queue.
func TestExtendToAnEarlierEndWakesLeasers(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{})
	ctx := context.Background()
	require.NoError(t, b.Enqueue(ctx, tk("a")))
	ds, err := b.Lease(ctx, "q", 1, time.Hour)
	require.NoError(t, err)
	require.Len(t, ds, 1)

	waiting := async(t, func() error {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		got, err := b.Lease(lctx, "q", 1, time.Minute)
		if err != nil {
			return err
		}
		if string(got[0].Task.Payload) != "a" || got[0].Task.Attempt != 2 {
			return fmt.Errorf("got %q attempt %d, want \"a\" attempt 2", got[0].Task.Payload, got[0].Task.Attempt)
		}
		return b.Ack(ctx, got[0])
	})
	requireBlocked(t, waiting, "Lease while the task is leased")
	require.NoError(t, b.Extend(ctx, ds[0], 50*time.Millisecond))
	require.NoError(t, requireReturns(t, waiting, "Lease after the shortened lease ended"))
}

// TestLeaseForAlmostEverIsHeld: a lease of the longest duration there is
// (the caller means "until I settle it") is held, not wrapped around to an
// end in the past: now + leaseFor overflowed, the lease had ended as soon
// as it was granted, and the task went to the next consumer while the
// first still held it. Extend likewise.
func TestLeaseForAlmostEverIsHeld(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{})
	ctx := context.Background()
	require.NoError(t, b.Enqueue(ctx, tk("a"), tk("b")))
	forever := time.Duration(math.MaxInt64)
	ds, err := b.Lease(ctx, "q", 1, forever)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.True(t, ds[0].LeaseUntil.After(time.Now().Add(100*365*24*time.Hour)), "lease until %s", ds[0].LeaseUntil)

	second, err := b.Lease(ctx, "q", 1, time.Minute)
	require.NoError(t, err)
	require.Len(t, second, 1)
	require.NoError(t, b.Extend(ctx, second[0], forever))
	require.True(t, second[0].LeaseUntil.After(time.Now().Add(100*365*24*time.Hour)), "extended until %s", second[0].LeaseUntil)

	lctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	again, err := b.Lease(lctx, "q", 1, time.Minute)
	require.ErrorIs(t, err, context.DeadlineExceeded, "delivered again while leased: %v", again)
	st, err := b.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, int64(2), st.InFlight)
	require.NoError(t, b.Ack(ctx, ds[0]))
	require.NoError(t, b.Ack(ctx, second[0]))
}

// TestDedupWindowForEver: a de-duplication window of the longest duration
// there is keeps an acked task's key refused. now + DedupWindow
// overflowed to a time in the past, and the key was forgotten at once:
// the same task was accepted and run again.
func TestDedupWindowForEver(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{DedupWindow: time.Duration(math.MaxInt64)})
	ctx := context.Background()
	first := tk("first")
	first.Key = "order-7"
	require.NoError(t, b.Enqueue(ctx, first))
	ds := lease(t, b, 1)
	require.NoError(t, b.Ack(ctx, ds[0]))

	again := tk("again")
	again.Key = "order-7"
	require.NoError(t, b.Enqueue(ctx, again))
	o, _, ok := task.Finished(again)
	require.True(t, ok, "a duplicate of the acked task is dropped and marked")
	require.Equal(t, task.Succeeded, o)
	st, err := b.Stats(ctx, "q")
	require.NoError(t, err)
	require.Zero(t, st.Ready)
}
