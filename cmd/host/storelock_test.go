package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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

// A store directory the host may not write fails the start at once with
// "permission denied". Tests run as root, which permission bits do not
// stop, so the host runs here as user and group 65534 (nobody), from a
// copy of the binary it may execute, on a store below a directory only
// root may write.
func TestStoreDirWithoutPermissionFailsTheStart(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the host as another user")
	}
	dir, err := os.MkdirTemp("", "plba-perm")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	// cp writes the copy: a file this process had open for writing could
	// be inherited by a parallel test's fork, and exec would then fail with
	// "text file busy".
	exe := filepath.Join(dir, "host")
	out, err := exec.Command("cp", hostBin, exe).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, os.Chmod(exe, 0o755))
	store := filepath.Join(dir, "root-only", "nats")
	require.NoError(t, os.Mkdir(filepath.Join(dir, "root-only"), 0o755))
	cfg := filepath.Join(dir, "store.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("log:\n  format: json\nadmin:\n  listen: 127.0.0.1:0\nqueue:\n  backend: jetstream\n  jetstream:\n    embedded:\n      store_dir: "+store+"\n"), 0o644))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "run", "--config", cfg)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	began := time.Now()
	err = cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, stderr.String())
	require.Equal(t, 1, ee.ExitCode(), stderr.String())
	line := lastLine(stderr.String())
	require.Contains(t, line, store)
	require.Contains(t, line, "permission denied")
	t.Log(line)
	require.Less(t, time.Since(began), 8*time.Second, "well below the 10 s ready timeout")
}
