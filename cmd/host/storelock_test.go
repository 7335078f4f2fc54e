package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// storeConfig is a host on embedded JetStream storing in dir, no apps.
func storeConfig(t *testing.T, dir string) string {
	t.Helper()
	return writeFile(t, "store.yaml", fmt.Sprintf(`log:
  format: json
admin:
  listen: 127.0.0.1:0
queue:
  backend: jetstream
  jetstream:
    embedded:
      store_dir: %s
`, dir))
}

// lastLine is the last line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Two hosts on one store directory would corrupt it: the second refuses
// to start (exit 1) with one line naming the directory and the first
// host's pid.
func TestSecondHostOnTheSameStoreIsRefused(t *testing.T) {
	t.Parallel()
	store := filepath.Join(t.TempDir(), "nats")
	cfg := storeConfig(t, store)
	first := startHost(t, nil, "--config", cfg)
	first.adminAddr(t)

	r := runHostCmd(t, nil, "run", "--config", cfg)
	require.Equal(t, 1, r.code, r.stderr)
	line := lastLine(r.stderr)
	require.Contains(t, line, "host: start failed")
	require.Contains(t, line, store)
	require.Contains(t, line, "pid "+strconv.Itoa(first.cmd.Process.Pid))
	require.NotContains(t, r.stderr, "goroutine ")
}

// A store directory the host cannot use fails the start at once with the
// cause (it waited 10 s for "nats server not ready" before).
func TestUnusableStoreDirFailsTheStart(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	began := time.Now()
	r := runHostCmd(t, nil, "run", "--config", storeConfig(t, file))
	require.Equal(t, 1, r.code, r.stderr)
	line := lastLine(r.stderr)
	require.Contains(t, line, file)
	require.Contains(t, line, "not a directory")
	require.NotContains(t, r.stderr, "not ready")
	require.Less(t, time.Since(began), 8*time.Second, "well below the 10 s ready timeout, with a loaded machine's start-up")
}
