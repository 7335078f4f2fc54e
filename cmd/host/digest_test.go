package main

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConfigDigestIsTheSameInEveryProcess: one configuration has one
// digest, whichever process loads it, so that the digest `config
// validate` prints is the one a host started from the same files shows
// in /admin/v1/status, and replicas can be told apart from hosts that
// run other settings. The effective configuration held the default
// telemetry.resource.service_instance_id, "<hostname>-<pid>" of the
// process that loaded it: every process had its own digest.
func TestConfigDigestIsTheSameInEveryProcess(t *testing.T) {
	t.Parallel()
	digest := regexp.MustCompile(`digest ([0-9a-f]+)\)`)
	var got []string
	for range 2 {
		r := runHostCmd(t, nil, "config", "validate", "--set", "admin.listen=127.0.0.1:0")
		require.Equal(t, 0, r.code, r.stderr)
		m := digest.FindStringSubmatch(r.stdout)
		require.NotNil(t, m, r.stdout)
		got = append(got, m[1])
	}
	require.Equal(t, got[0], got[1], "two processes, one configuration, two digests")

	// Set, the instance id is the configuration's like any key.
	r := runHostCmd(t, nil, "config", "show", "--set", "telemetry.resource.service_instance_id=host-a")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "service_instance_id: host-a")
}
