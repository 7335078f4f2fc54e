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

// TestBackoffNeverExceedsMax: backoff.max is the longest delay, jitter
// included: the jitter spreads the capped delay below max, never above
// it. With max 200ms and the default jitter a delay of 228ms was seen.
// Below max the delay is still spread both ways.
func TestBackoffNeverExceedsMax(t *testing.T) {
	t.Parallel()
	b := worker.Backoff{Initial: 100 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2, Jitter: 0.2}
	require.NoError(t, b.Validate())
	var above bool
	for range 500 {
		for n := 1; n <= 6; n++ {
			d := b.Delay(n)
			require.LessOrEqual(t, d, b.Max, "attempt %d", n)
			require.GreaterOrEqual(t, d, 80*time.Millisecond, "attempt %d", n)
		}
		above = above || b.Delay(1) > 100*time.Millisecond
	}
	require.True(t, above, "below max the jitter spreads the delay above it too")
}
