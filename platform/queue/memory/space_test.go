package memory_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
)

// trapClock is a frozen clock that, once armed, lets skip calls through
// and then holds the next caller until release is closed (entered tells
// the test it is held). A blocked Enqueue reads the clock right after it
// was woken, before it looks at the queue again.
type trapClock struct {
	at      time.Time
	armed   atomic.Bool
	skip    atomic.Int64
	entered chan struct{}
	release chan struct{}
}

func (c *trapClock) now() time.Time {
	if c.armed.Load() && c.skip.Add(-1) < 0 && c.armed.CompareAndSwap(true, false) {
		close(c.entered)
		<-c.release
	}
	return c.at
}

// TestWokenEnqueueThatNoLongerFitsPassesTheTurnOn: a blocked Enqueue
// woken for room that another Enqueue took before it looked again goes
// back to waiting, behind the others; an Enqueue that was waiting behind
// it and fits the room left is woken. It was not: it stayed blocked with
// room in the queue until something else freed room.
func TestWokenEnqueueThatNoLongerFitsPassesTheTurnOn(t *testing.T) {
	t.Parallel()
	clk := &trapClock{at: time.Unix(1_700_000_000, 0), entered: make(chan struct{}), release: make(chan struct{})}
	b := memory.New(memory.Options{Capacity: 2, Now: clk.now})
	ctx := context.Background()
	require.NoError(t, b.Enqueue(ctx, tk("a"), tk("b")))
	ds := lease(t, b, 2)

	pair := async(t, func() error { return b.Enqueue(ctx, tk("x"), tk("y")) })
	requireBlocked(t, pair, "Enqueue of two on a full queue")
	one := async(t, func() error { return b.Enqueue(ctx, tk("z")) })
	requireBlocked(t, one, "Enqueue of one behind it")
	// Closing unblocks both (the cleanups run in reverse order).
	t.Cleanup(func() { _ = b.Close(ctx) })

	require.NoError(t, b.Ack(ctx, ds[0]))
	requireBlocked(t, one, "Enqueue of one behind a waiting pair (first come, first served)")
	// The second ack makes room for the pair, which is woken; the clock
	// holds it (after the ack's own reading) while another Enqueue takes
	// one of the two slots.
	clk.skip.Store(1)
	clk.armed.Store(true)
	require.NoError(t, b.Ack(ctx, ds[1]))
	select {
	case <-clk.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the pair was not woken by the ack")
	}
	require.NoError(t, b.Enqueue(ctx, tk("e")))
	close(clk.release)

	// One slot is left: the pair waits again, the single task fits.
	require.NoError(t, requireReturns(t, one, "Enqueue of one with room for it"))
	requireBlocked(t, pair, "Enqueue of two with no room")
	st, err := b.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, queue.Stats{Queue: "q", Ready: 2}, st)
	require.NoError(t, b.Close(ctx))
	require.ErrorIs(t, requireReturns(t, pair, "Enqueue during Close"), queue.ErrClosed)
}
