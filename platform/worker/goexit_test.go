package worker_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// TestHandlerGoexitIsACrash: a handler that ends its goroutine with
// runtime.Goexit (testing's FailNow, require.* outside the test's
// goroutine) takes its worker with it, like a panic that nothing
// recovers; the pool replaces the worker and fails the attempt (retried
// here, then handled). The worker used to vanish unnoticed: the pool kept
// counting it (Workers, InFlight), held its delivery's slot for ever and,
// with one worker, never ran anything again.
func TestHandlerGoexitIsACrash(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	cfg := fast
	cfg.Concurrency = 1
	cfg.Lease = 200 * time.Millisecond
	b := setup(t, cfg, task.Route{Kind: "k", MaxAttempts: 3, Handler: task.HandlerFunc(func(_ context.Context, t *task.Task) error {
		if runs.Add(1) == 1 {
			runtime.Goexit()
		}
		return nil
	})})
	b.enqueue(t, &task.Task{Kind: "k"})
	p := b.pool(t, "default")
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 1 }, 10*time.Second, time.Millisecond,
		"stats %+v", p.Stats())
	st := p.Stats()
	require.Equal(t, int64(2), runs.Load())
	require.Equal(t, int64(1), st.WorkerRestarts)
	require.Equal(t, int64(1), st.Failed)
	require.Equal(t, int64(1), st.Retried, "the attempt counted")
	require.Contains(t, st.LastError, "runtime.Goexit")
	require.Equal(t, 1, st.Workers)
	require.Zero(t, st.InFlight)
}
