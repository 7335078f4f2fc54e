package worker_test

import (
	"context"
	"math"
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

// TestRouteTimeoutForEver: a route whose Timeout is the longest duration
// there is (no timeout, in effect) gives its handler a live context with
// a deadline far ahead. The pool added the timeout to the start time and
// overflowed: the context had ended before the handler ran, and every
// attempt failed as "task timed out".
func TestRouteTimeoutForEver(t *testing.T) {
	t.Parallel()
	type seen struct {
		err      error
		deadline time.Time
	}
	got := make(chan seen, 1)
	b := setup(t, fast, task.Route{Kind: "k", Timeout: time.Duration(math.MaxInt64), MaxAttempts: 1,
		Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
			dl, _ := ctx.Deadline()
			select {
			case <-ctx.Done():
			default:
			}
			got <- seen{err: ctx.Err(), deadline: dl}
			return ctx.Err()
		})})
	b.enqueue(t, &task.Task{Kind: "k"})
	s := within(t, got, "the handler")
	require.NoError(t, s.err)
	require.True(t, s.deadline.After(time.Now().Add(100*365*24*time.Hour)), "deadline %s", s.deadline)
	p := b.pool(t, "default")
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 1 }, 10*time.Second, time.Millisecond)
}
