package sleep_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/sleep"
)

func TestForWaitsUnlessDone(t *testing.T) {
	t.Parallel()
	began := time.Now()
	require.True(t, sleep.For(nil, 20*time.Millisecond))
	require.GreaterOrEqual(t, time.Since(began), 20*time.Millisecond)

	done := make(chan struct{})
	close(done)
	began = time.Now()
	require.False(t, sleep.For(done, time.Hour))
	require.Less(t, time.Since(began), time.Second)
}

func TestCtxReturnsTheContextsError(t *testing.T) {
	t.Parallel()
	require.NoError(t, sleep.Ctx(context.Background(), time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, sleep.Ctx(ctx, time.Hour), context.Canceled)
}
