package jsapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/jsapi"
)

// A request that gets no answer is tried again with a longer bound; one
// that fails for good is not retried; the outer context ends the retries.
func TestRetry(t *testing.T) {
	t.Parallel()
	var bounds []time.Duration
	calls := 0
	v, err := jsapi.Retry(context.Background(), func(ctx context.Context) (int, error) {
		calls++
		dl, _ := ctx.Deadline()
		bounds = append(bounds, time.Until(dl).Round(time.Second))
		if calls < 3 {
			return 0, context.DeadlineExceeded // as if the reply never came
		}
		return 42, nil
	})
	require.NoError(t, err)
	require.Equal(t, 42, v)
	require.Equal(t, []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}, bounds)

	calls = 0
	_, err = jsapi.Retry(context.Background(), func(context.Context) (int, error) {
		calls++
		return 0, jetstream.ErrStreamNotFound
	})
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
	require.Equal(t, 1, calls, "not found is an answer")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = jsapi.Retry(ctx, func(context.Context) (int, error) { return 0, jetstream.ErrStreamNameAlreadyInUse })
	require.True(t, errors.Is(err, jetstream.ErrStreamNameAlreadyInUse))
	require.Error(t, ctx.Err(), "retried until the context ended")
}
