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

// TestJetStreamProblemsNameTheirKey: a bad queue.jetstream field is
// reported at its own full key. The embedded server's fields came at
// queue.jetstream.embedded ("embedded: sync_interval -1s must not be
// negative"), and prefetch, max_ack_pending, max_async_pending,
// publish_timeout and connect_timeout at queue.jetstream, in one message
// naming several.
func TestJetStreamProblemsNameTheirKey(t *testing.T) {
	t.Parallel()
	for set, key := range map[string]string{
		"queue.jetstream.embedded.sync_interval=-1s": "queue.jetstream.embedded.sync_interval",
		"queue.jetstream.embedded.max_store=-1":      "queue.jetstream.embedded.max_store",
		"queue.jetstream.embedded.max_memory=-1":     "queue.jetstream.embedded.max_memory",
		"queue.jetstream.embedded.max_payload=-1":    "queue.jetstream.embedded.max_payload",
		"queue.jetstream.embedded.ready_timeout=-1s": "queue.jetstream.embedded.ready_timeout",
		"queue.jetstream.embedded.sync=bogus":        "queue.jetstream.embedded.sync",
		"queue.jetstream.embedded.listen=nope":       "queue.jetstream.embedded.listen",
		"queue.jetstream.prefetch=-1":                "queue.jetstream.prefetch",
		"queue.jetstream.max_ack_pending=-1":         "queue.jetstream.max_ack_pending",
		"queue.jetstream.max_async_pending=-1":       "queue.jetstream.max_async_pending",
		"queue.jetstream.publish_timeout=-1s":        "queue.jetstream.publish_timeout",
		"queue.jetstream.connect_timeout=-1s":        "queue.jetstream.connect_timeout",
	} {
		_, err := config.Load(config.Options{Environ: []string{}, Sets: []string{"queue.backend=jetstream", set}})
		var ce *config.Error
		require.True(t, errors.As(err, &ce), "%s: not a configuration error: %v", set, err)
		var keys []string
		for _, p := range ce.Problems {
			keys = append(keys, p.Key)
		}
		require.Equal(t, []string{key}, keys, "%s: %v", set, err)
		src, _, _ := strings.Cut(set, "=")
		require.Equal(t, "--set "+src+"=...", ce.Problems[0].Source, set)
	}
}

// TestJetStreamProblemsAreAllReported: every bad queue.jetstream field
// is reported at once, each at its key, the embedded server's too; the
// first one alone was, so a host was fixed and started again once per
// mistake.
func TestJetStreamProblemsAreAllReported(t *testing.T) {
	t.Parallel()
	sets := []string{
		"queue.jetstream.embedded.sync_interval=-1s", "queue.jetstream.embedded.max_store=-1",
		"queue.jetstream.prefetch=-1", "queue.jetstream.ack_wait=1ms", "queue.jetstream.stream_prefix=a.b",
	}
	_, err := config.Load(config.Options{Environ: []string{}, Sets: append([]string{"queue.backend=jetstream"}, sets...)})
	var ce *config.Error
	require.True(t, errors.As(err, &ce), "not a configuration error: %v", err)
	var keys []string
	for _, p := range ce.Problems {
		require.NotContains(t, p.Msg, "\n", "problem %q", p.Error())
		keys = append(keys, p.Key)
	}
	var want []string
	for _, s := range sets {
		k, _, _ := strings.Cut(s, "=")
		want = append(want, k)
	}
	require.ElementsMatch(t, want, keys, "%v", err)

	_, err = config.Load(config.Options{Environ: []string{}, Sets: []string{"queue.backend=jetstream", "queue.jetstream.replicas=2"}})
	require.True(t, errors.As(err, &ce), "not a configuration error: %v", err)
	require.Len(t, ce.Problems, 1, "one problem for one bad value: %v", err)
	require.Equal(t, "queue.jetstream.replicas", ce.Problems[0].Key)
}
