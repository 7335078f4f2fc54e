package embedded_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// A store directory on a full disk fails at once, naming the directory
// and the cause, instead of a wait for a server that never becomes ready.
// The disk is a 64 KiB tmpfs the test mounts and fills; mounting needs
// root, so the test skips itself without it.
func TestFullDiskStoreDirFailsFast(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	dir := filepath.Join(mnt, "nats")
	require.NoError(t, os.MkdirAll(dir, 0o750))
	fill, err := os.Create(filepath.Join(mnt, "fill"))
	require.NoError(t, err)
	block := make([]byte, 4096)
	for {
		if _, err := fill.Write(block); err != nil {
			break // the disk is full
		}
	}
	require.NoError(t, fill.Close())

	began := time.Now()
	_, err = start(t, dir)
	took := time.Since(began)
	require.ErrorIs(t, err, embedded.ErrStoreUnusable)
	require.ErrorContains(t, err, dir)
	require.ErrorContains(t, err, "no space left on device")
	require.Less(t, took, time.Second, "%v", err)
	t.Log(err)
}
