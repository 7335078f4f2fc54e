package embedded_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

func start(t *testing.T, dir string) (*embedded.Server, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	srv, err := embedded.Start(ctx, embedded.Config{StoreDir: dir}, nil)
	if err == nil {
		t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	}
	return srv, err
}

// Two servers on one store directory would corrupt it: the second is
// refused, naming the directory and the holder's pid, and the store is
// free again once the first is shut down.
func TestOneServerPerStoreDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := start(t, dir)
	require.NoError(t, err)
	began := time.Now()
	_, err = start(t, dir)
	require.ErrorIs(t, err, embedded.ErrStoreInUse)
	require.Less(t, time.Since(began), time.Second)
	require.Contains(t, err.Error(), dir)
	require.Contains(t, err.Error(), "pid "+strconv.Itoa(os.Getpid()))
	require.NoError(t, first.Shutdown(t.Context()))
	_, err = start(t, dir)
	require.NoError(t, err, "the lock goes with the server")
}

// An unusable store directory fails at once with the cause instead of a
// wait for a server that never becomes ready. Tests run as root, which
// bypasses permission bits, so the cases are made of what root cannot
// use either: a file where the directory should be, a directory below a
// file, a lock file that is a directory, and a JetStream directory that is
// a file (the server's own failure, reported from its fatal log line).
// cmd/host's TestStoreDirWithoutPermissionFailsTheStart runs the host as
// another user for the permission case.
func TestUnusableStoreDirFailsFast(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	file := filepath.Join(base, "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	lockDir := filepath.Join(base, "lockdir")
	require.NoError(t, os.MkdirAll(filepath.Join(lockDir, "plba.lock"), 0o750))
	jsFile := filepath.Join(base, "jsfile")
	require.NoError(t, os.MkdirAll(jsFile, 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(jsFile, "jetstream"), []byte("x"), 0o600))
	for _, tc := range []struct{ name, dir, want string }{
		{"file", file, "not a directory"},
		{"below a file", filepath.Join(file, "nats"), "not a directory"},
		{"lock file is a directory", lockDir, "is a directory"},
		{"jetstream dir is a file", jsFile, "Can't start JetStream"},
	} {
		began := time.Now()
		_, err := start(t, tc.dir)
		took := time.Since(began)
		require.ErrorIs(t, err, embedded.ErrStoreUnusable, tc.name)
		require.ErrorContains(t, err, tc.dir, tc.name)
		require.ErrorContains(t, err, tc.want, tc.name)
		require.Less(t, took, time.Second, "%s: %v", tc.name, err)
	}
}
