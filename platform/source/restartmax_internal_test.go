package source

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRestartDelayThatCannotBeJitteredIsRefused: the restart delay is
// spread by up to restart_jitter above it, and one so large that the
// spread passed the largest time.Duration wrapped round to a negative
// delay: with restart_initial and restart_max 2562047h, half the first
// delays were negative and the source restarted at once instead of in
// 292 years. Such delays are refused, naming the key and the bound; an
// initial delay above the default max (restart_max left out) is refused
// as one above a given max.
func TestRestartDelayThatCannotBeJitteredIsRefused(t *testing.T) {
	t.Parallel()
	const huge = 2562047 * time.Hour
	err := Config{RestartInitial: huge, RestartMax: huge}.Validate()
	require.Error(t, err)
	require.Contains(t, err.Error(), "restart_max: must be at most "+MaxRestartDelay.String())
	require.Contains(t, err.Error(), "restart_initial: must be at most "+MaxRestartDelay.String())

	err = Config{RestartInitial: time.Hour}.Validate()
	require.Error(t, err)
	require.Contains(t, err.Error(), "restart_initial: must not exceed restart_max "+DefaultRestartMax.String())

	top := Config{RestartInitial: MaxRestartDelay, RestartMax: MaxRestartDelay, RestartJitter: 1}
	require.NoError(t, top.Validate())
	for range 200 { // the spread is random: half the draws overflowed
		require.Greater(t, top.backoff().NextBackOff(), time.Hour)
	}
}
