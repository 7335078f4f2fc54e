//go:build unix

package workerbench

import (
	"syscall"
	"time"
)

// CPUTime returns the process's user plus system CPU time so far (all
// goroutines, the GC and an embedded server included), for benchmarks
// that report CPU time per operation. It is 0 where it is not measured.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
