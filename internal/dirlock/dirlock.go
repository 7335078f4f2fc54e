// Package dirlock gives a process exclusive use of a store: an advisory
// flock(2) on a lock file, with the holder's pid written into it so that
// a second process can say who holds the store. The kernel drops the lock
// when the holder exits, however it exits, so a crash never leaves a
// stale lock behind (the pid in the file is then only a leftover).
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrLocked is returned by Acquire when another process (or another
// Acquire in this one) holds the lock.
var ErrLocked = errors.New("in use by another process")

// Lock is a held lock; Release it when the store is closed.
type Lock struct {
	f *os.File
}

// Acquire creates path if needed, locks it exclusively without waiting
// and writes the calling process's pid into it. When the lock is held
// elsewhere the error wraps ErrLocked and names the holder's pid.
func Acquire(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := flock(f); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (pid %s holds %s)", ErrLocked, holder(path), path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	pid := strconv.Itoa(os.Getpid()) + "\n"
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(pid), 0)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("write lock file %s: %w", path, err)
		}
	} else {
		_ = f.Close()
		return nil, fmt.Errorf("write lock file %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// flock takes the exclusive lock without blocking, retrying when a
// signal interrupts the call.
func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// holder reads the pid the holder wrote; it may be writing it right now,
// so an empty file is read again for a moment.
func holder(path string) string {
	for range 20 {
		b, err := os.ReadFile(path)
		if err == nil {
			if pid := strings.TrimSpace(string(b)); pid != "" {
				return pid
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return "unknown"
}

// Release unlocks and closes the lock file (the file stays). It is safe
// to call on a nil Lock and more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	return f.Close() // closing the last descriptor drops the flock
}
