package config_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/plba/plba/platform/config"
)

// TestConfigFileMustBeRegular: a configuration file that is a FIFO
// nobody writes to (`host config validate --config ff`) blocked Load, and
// so the host, for ever, without a word; a device read until the size
// limit. Each is refused at once, naming the file and what it is, as a
// secret file is.
func TestConfigFileMustBeRegular(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "c.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO: %v", err)
	}
	done := make(chan error, 1)
	go func() { // would block for ever on a FIFO without the check
		_, err := load(t, config.Options{Files: []string{fifo}})
		done <- err
	}()
	select {
	case err := <-done:
		requireProblem(t, err, fifo, "", "cannot read file: "+fifo+" is a named pipe (FIFO), not a regular file")
	case <-time.After(20 * time.Second):
		f, _ := os.OpenFile(fifo, os.O_WRONLY, 0) // unblock the reader
		if f != nil {
			_ = f.Close()
		}
		<-done
		t.Fatal("loading a FIFO configuration file hung")
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		_, err := load(t, config.Options{Files: []string{"/dev/zero"}})
		requireProblem(t, err, "/dev/zero", "", "cannot read file: /dev/zero is a device, not a regular file")
	}
}
