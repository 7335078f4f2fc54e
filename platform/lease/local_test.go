package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lease"
)

func TestLocalOneHolderAtATime(t *testing.T) {
	l := lease.NewLocal("mailbox", "me")
	h, err := l.Acquire(context.Background())
	require.NoError(t, err)
	require.Equal(t, lease.Status{Name: "mailbox", Holder: "me", Since: l.Status().Since, Held: true}, l.Status())

	// A second Acquire waits: it returns only when its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = l.Acquire(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	got := make(chan lease.Hold, 1)
	go func() {
		h2, err := l.Acquire(context.Background())
		if err == nil {
			got <- h2
		}
	}()
	require.NoError(t, h.Release(context.Background()))
	require.NoError(t, h.Release(context.Background()), "idempotent")
	h2 := <-got
	require.True(t, l.Status().Held)
	require.NoError(t, h2.Release(context.Background()))
	require.False(t, l.Status().Held)
}

func TestLocalsGiveOneLeasePerName(t *testing.T) {
	var p lease.Locals
	a, b := p.Lease("x"), p.Lease("x")
	h, err := a.Acquire(context.Background())
	require.NoError(t, err)
	require.True(t, b.Status().Held, "the same lease")
	require.False(t, p.Lease("y").Status().Held)
	require.NoError(t, h.Release(context.Background()))
}
