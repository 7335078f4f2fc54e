package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/memory"
)

// With a fake clock, NextDue names when the delayed task comes due, and
// Wake after moving the clock there hands it to a Lease call that was
// already blocked: an hour's delay takes no real time.
func TestNextDueAndWakeWithFakeClock(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := newBackend(t, memory.Options{Now: c.Now})
	ctx := context.Background()

	_, ok := b.NextDue()
	require.False(t, ok, "nothing scheduled")

	later := tk("later")
	later.NotBefore = c.Now().Add(time.Hour)
	require.NoError(t, b.Enqueue(ctx, later))
	at, ok := b.NextDue()
	require.True(t, ok)
	require.Equal(t, later.NotBefore, at)

	leased := make(chan int, 1)
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	go func() {
		ds, err := b.Lease(lctx, "q", 1, time.Minute)
		if err != nil {
			leased <- -1
			return
		}
		leased <- len(ds)
	}()

	c.add(time.Hour)
	// The leaser may not be blocked yet; Wake must reach it either way:
	// a Lease that starts after the clock moved finds the task due itself.
	require.Eventually(t, func() bool {
		b.Wake()
		select {
		case n := <-leased:
			require.Equal(t, 1, n)
			return true
		default:
			return false
		}
	}, 30*time.Second, 5*time.Millisecond)

	// The lease's end is now what comes next.
	at, ok = b.NextDue()
	require.True(t, ok)
	require.Equal(t, c.Now().Add(time.Minute), at)
}
