package dirlock_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/dirlock"
)

func TestSecondAcquireNamesTheHolder(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.lock")
	l, err := dirlock.Acquire(path)
	require.NoError(t, err)
	_, err = dirlock.Acquire(path)
	require.ErrorIs(t, err, dirlock.ErrLocked)
	require.Contains(t, err.Error(), "pid "+strconv.Itoa(os.Getpid()))
	require.Contains(t, err.Error(), path)
	require.NoError(t, l.Release())
	l2, err := dirlock.Acquire(path)
	require.NoError(t, err, "free again after Release")
	require.NoError(t, l2.Release())
	require.NoError(t, l2.Release())
}

func TestUnusablePath(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err := dirlock.Acquire(filepath.Join(file, "x.lock"))
	require.ErrorContains(t, err, "not a directory")
}
