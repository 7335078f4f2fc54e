package platform_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/config"
)

// TestMemoryQueueProblemsLandOnTheirKeys: each bad queue.memory field is a
// problem of its own, at its full key, on one line. They used to come as
// one problem at queue.memory whose message held the others on lines of
// their own, without the source or the key.
func TestMemoryQueueProblemsLandOnTheirKeys(t *testing.T) {
	t.Parallel()
	_, err := config.Load(config.Options{Environ: []string{}, Sets: []string{
		"queue.memory.capacity=-1", "queue.memory.max_dead=-5", "queue.memory.default_lease=-1s",
	}})
	var ce *config.Error
	require.True(t, errors.As(err, &ce), "not a configuration error: %v", err)
	got := map[string]string{}
	for _, p := range ce.Problems {
		require.NotContains(t, p.Msg, "\n", "problem %q", p.Error())
		got[p.Key] = p.Source + " | " + p.Msg
	}
	require.Equal(t, map[string]string{
		"queue.memory.capacity":      "--set queue.memory.capacity=... | must not be negative (got -1)",
		"queue.memory.max_dead":      "--set queue.memory.max_dead=... | must not be negative (got -5)",
		"queue.memory.default_lease": "--set queue.memory.default_lease=... | must not be negative (got -1s)",
	}, got)
	for _, line := range strings.Split(err.Error(), "\n") {
		require.True(t, strings.HasPrefix(line, "--set queue.memory."), "line without its source: %q", line)
	}
}
