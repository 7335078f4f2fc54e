package worker_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// TestDerivedHandlerContextsCostNoGoroutine: a handler that derives
// contexts from its own (WithTimeout, WithCancel: an HTTP or SQL call
// each) starts no goroutine per derived context. The pool's own context
// type used to make each derivation start a watcher goroutine: 100
// derived contexts, 100 goroutines. Not parallel: it counts the process's
// goroutines.
func TestDerivedHandlerContextsCostNoGoroutine(t *testing.T) {
	const derived = 100
	grew := make(chan int, 1)
	b := setup(t, fast, task.Route{Kind: "k", Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
		before := runtime.NumGoroutine()
		var cancels []context.CancelFunc
		for i := range derived {
			var c context.Context
			var cancel context.CancelFunc
			if i%2 == 0 {
				c, cancel = context.WithTimeout(ctx, time.Hour)
			} else {
				c, cancel = context.WithCancel(ctx)
			}
			_ = c.Done()
			cancels = append(cancels, cancel)
		}
		grew <- runtime.NumGoroutine() - before
		for _, cancel := range cancels {
			cancel()
		}
		return nil
	})})
	b.enqueue(t, &task.Task{Kind: "k"})
	n := within(t, grew, "the handler")
	require.Less(t, n, derived/2, "goroutines started by %d derived contexts", derived)
}
