package worker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/worker"
)

// TestBackoffMaxThatCannotBeJitteredIsRefused: the delay is spread by up
// to Jitter above Max, and a Max so large that the spread passed the
// largest time.Duration wrapped round to a negative delay: with max
// 2562047h, multiplier 1e300 and the default jitter, every failed task
// was retried at once (Delay(2) was negative) and ran its attempts out
// in milliseconds. Such a max is refused, naming the key and the bound;
// the largest accepted one gives delays that stay within it.
func TestBackoffMaxThatCannotBeJitteredIsRefused(t *testing.T) {
	t.Parallel()
	huge := worker.Backoff{Initial: time.Millisecond, Max: 2562047 * time.Hour, Multiplier: 1e300, Jitter: 0.2}
	err := huge.Validate()
	require.Error(t, err)
	require.Contains(t, err.Error(), "max: must be at most "+worker.MaxBackoffMax.String())

	top := worker.Backoff{Initial: time.Millisecond, Max: worker.MaxBackoffMax, Multiplier: 1e300, Jitter: 1}
	require.NoError(t, top.Validate())
	for range 200 { // the spread is random: half the draws overflowed
		require.Greater(t, top.Delay(2), time.Hour, "the delay was meant to be near max")
	}

	// An initial delay above the default max (max left out) is refused
	// as one above a max given: it was taken, and its spread could wrap
	// round the same way.
	err = worker.Backoff{Initial: 2562047 * time.Hour}.Validate()
	require.Error(t, err)
	require.Contains(t, err.Error(), "initial: must not exceed max "+worker.DefaultBackoffMax.String())
}
