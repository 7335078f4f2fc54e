package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A malformed NATS URL is a configuration error: validate and run both
// exit 2 naming the key, before anything connects.
func TestMalformedNATSURLExit2(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "bad.yaml", "queue:\n  backend: jetstream\n  jetstream:\n    url: nats://127.0.0.1:99999\n")
	for _, cmd := range [][]string{{"config", "validate"}, {"run"}} {
		r := runHostCmd(t, nil, append(cmd, "--config", path)...)
		require.Equal(t, 2, r.code, "%v: %s", cmd, r.stderr)
		require.Contains(t, r.stderr, "queue.jetstream.url", "%v", cmd)
		require.Contains(t, r.stderr, "out of range", "%v", cmd)
	}
}
