package host

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
)

// A start that times out while the JetStream backend connects names the
// backend, the component it waited for, and not the pool whose start had
// not begun (registered earlier, it is in state "starting" as well).
func TestStartTimeoutNamesWhatItWaitedFor(t *testing.T) {
	r := cli(t, []string{"run", "--set", "admin.listen=127.0.0.1:0", "--set", "log.level=error",
		"--set", "queue.backend=jetstream", "--set", "queue.jetstream.url=nats://" + silent(t),
		"--set", "queue.jetstream.connect_timeout=3s", "--set", "lifecycle.start_timeout=1s"})
	require.Equal(t, ExitFailure, r.code, r.stderr)
	require.Contains(t, r.stderr, "start timed out after 1s (waiting for queue/jetstream)", r.stderr)
}

// silent is the address of a NATS server that hangs every connect.
func silent(t *testing.T) string {
	addr, _ := netfault.Silent(t)
	return addr
}
