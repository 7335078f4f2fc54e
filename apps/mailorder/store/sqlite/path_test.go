package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/store/sqlite"
)

// A store path that names a named pipe, a device or a directory was
// accepted by Validate, so `config validate` passed; at start SQLite
// failed with "disk I/O error", naming neither key nor path, after Open
// had made <path>.lock and <path>-journal beside it (in /dev for a
// device). The path must be a regular file, or not exist yet: anything
// else is a problem at path, from Validate and so from Open, which then
// makes nothing.
func TestPathMustBeARegularFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pipe := filepath.Join(dir, "orders.db")
	require.NoError(t, syscall.Mkfifo(pipe, 0o600))
	t.Cleanup(func() { // should a read block on it, end it
		if f, err := os.OpenFile(pipe, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	require.ErrorContains(t, sqlite.Config{Path: "/dev/null"}.WithDefaults().Validate(), "path: /dev/null is a device, not a regular file")
	for _, tc := range []struct{ path, want string }{
		{pipe, "path: " + pipe + " is a named pipe (FIFO), not a regular file"},
		{dir, "path: " + dir + " is a directory, not a regular file"},
	} {
		cfg := sqlite.Config{Path: tc.path}.WithDefaults()
		require.ErrorContains(t, cfg.Validate(), tc.want)
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := sqlite.Open(ctx, cfg)
			if err == nil {
				s.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			require.ErrorContains(t, err, tc.want)
			_, err = os.Stat(tc.path + ".lock")
			require.True(t, os.IsNotExist(err), "%s.lock made", tc.path)
		case <-time.After(15 * time.Second):
			t.Fatalf("Open(%q) has not returned after 15s", tc.path)
		}
	}
	require.NoError(t, sqlite.Config{Path: filepath.Join(dir, "new.db")}.WithDefaults().Validate())
}
