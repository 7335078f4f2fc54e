package platform_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/config"
)

// TestValuesThatDisableTheHostAreProblems: a value within its type that
// turns the host against itself is a problem at its key. Each was
// accepted: checks and metric exports every nanosecond ran back to back,
// a duplicate window of a nanosecond stored a task twice when its
// unanswered Enqueue was sent again, publish and connect timeouts of a
// nanosecond failed every publish and every connect, and an embedded
// max_payload of one byte refused every task.
func TestValuesThatDisableTheHostAreProblems(t *testing.T) {
	t.Parallel()
	for set, key := range map[string]string{
		"health.interval=1ns":                      "health.interval",
		"health.timeout=1ns":                       "health.timeout",
		"queue.jetstream.duplicate_window=1ns":     "queue.jetstream.duplicate_window",
		"queue.jetstream.publish_timeout=1ns":      "queue.jetstream.publish_timeout",
		"queue.jetstream.connect_timeout=1ns":      "queue.jetstream.connect_timeout",
		"queue.jetstream.embedded.max_payload=1":   "queue.jetstream.embedded.max_payload",
		"telemetry.metrics.otlp.interval=1ns":      "telemetry.metrics.otlp.interval",
		"queue.jetstream.embedded.max_payload=-1":  "queue.jetstream.embedded.max_payload",
		"queue.jetstream.duplicate_window=-1s":     "queue.jetstream.duplicate_window",
		"telemetry.metrics.otlp.interval=999999ns": "telemetry.metrics.otlp.interval",
	} {
		sets := []string{"queue.backend=jetstream", "telemetry.metrics.otlp.enabled=true", "telemetry.metrics.otlp.endpoint=127.0.0.1:4317", set}
		_, err := config.Load(config.Options{Environ: []string{}, Sets: sets})
		var ce *config.Error
		require.True(t, errors.As(err, &ce), "%s: not a configuration error: %v", set, err)
		var keys []string
		for _, p := range ce.Problems {
			keys = append(keys, p.Key)
		}
		require.Equal(t, []string{key}, keys, "%s: %v", set, err)
	}
	// The bounds themselves, and the defaults, are accepted.
	_, err := config.Load(config.Options{Environ: []string{}, Sets: []string{
		"queue.backend=jetstream", "health.interval=10ms", "health.timeout=1ms",
		"queue.jetstream.duplicate_window=1s", "queue.jetstream.publish_timeout=10ms",
		"queue.jetstream.connect_timeout=10ms", "queue.jetstream.embedded.max_payload=65536",
		"telemetry.metrics.otlp.enabled=true", "telemetry.metrics.otlp.endpoint=127.0.0.1:4317",
		"telemetry.metrics.otlp.interval=100ms"}})
	require.NoError(t, err)
	_, err = config.Load(config.Options{Environ: []string{}, Sets: []string{"queue.backend=jetstream"}})
	require.NoError(t, err)
}
