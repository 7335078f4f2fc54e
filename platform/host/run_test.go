package host

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// silentServer listens on a loopback port, accepts connections and never
// answers: a NATS server that hangs every connect.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() { // owned: ends when the cleanup closes the listener
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln.Addr().String()
}

// A start that times out while the JetStream backend connects names the
// backend, the component it waited for, and not the pool whose start had
// not begun (registered earlier, it is in state "starting" as well).
func TestStartTimeoutNamesWhatItWaitedFor(t *testing.T) {
	r := cli(t, []string{"run", "--set", "admin.listen=127.0.0.1:0", "--set", "log.level=error",
		"--set", "queue.backend=jetstream", "--set", "queue.jetstream.url=nats://" + silentServer(t),
		"--set", "queue.jetstream.connect_timeout=3s", "--set", "lifecycle.start_timeout=1s"})
	require.Equal(t, ExitFailure, r.code, r.stderr)
	require.Contains(t, r.stderr, "start timed out after 1s (waiting for queue/jetstream)", r.stderr)
}
