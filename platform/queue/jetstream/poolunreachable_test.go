package jetstream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// unreachableAfter is the pools' UnreachableAfter in these tests.
const unreachableAfter = time.Second

// watchedPool is a pool of queue "watched" on b, degraded once b's
// probes failed for unreachableAfter; its handler reports each task it
// ran on ran.
type watchedPool struct {
	b    *jetstream.Backend
	p    *worker.Pool
	comp *lifecycle.Component
	ran  chan string
}

func newWatchedPool(t *testing.T, b *jetstream.Backend) *watchedPool {
	t.Helper()
	w := &watchedPool{b: b, ran: make(chan string, 1)}
	reg := lifecycle.NewRegistry(nil, nil)
	router, err := worker.NewRouter([]task.Route{{Kind: "k", Queue: "watched", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		w.ran <- tk.ID
		return nil
	})}})
	require.NoError(t, err)
	w.p, err = worker.NewPool(worker.PoolParams{Queue: "watched", Backend: b, Router: router, Registry: reg,
		Config: worker.PoolConfig{Concurrency: 1, DrainTimeout: time.Second, UnreachableAfter: unreachableAfter}})
	require.NoError(t, err)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, w.p.Stop(sctx))
	})
	comp, ok := reg.Get("pool/watched")
	require.True(t, ok)
	w.comp = comp
	return w
}

// requireDegradedWithin waits for the pool to show degraded, by probes
// that found its server unreachable, within limit of since.
func (w *watchedPool) requireDegradedWithin(t *testing.T, since time.Time, limit time.Duration) {
	t.Helper()
	waitFor(t, limit, "the pool degraded", func() bool { return w.comp.State() == lifecycle.Degraded })
	t.Logf("degraded %v after the server stopped", time.Since(since).Round(time.Millisecond))
	st := w.comp.Status()
	require.Contains(t, st.LastError, "backend unreachable for")
	require.Contains(t, st.LastError, jetstream.ErrUnreachable.Error())
}

// requireRuns waits for the pool to show running, then checks it runs a
// task enqueued now.
func (w *watchedPool) requireRuns(t *testing.T, id string) {
	t.Helper()
	waitFor(t, 30*time.Second, "the pool running again", func() bool { return w.comp.State() == lifecycle.Running })
	require.NoError(t, w.b.Enqueue(t.Context(), &task.Task{ID: id, Kind: "k", Queue: "watched"}))
	select {
	case got := <-w.ran:
		require.Equal(t, id, got)
	case <-time.After(30 * time.Second):
		t.Fatalf("task %s did not run", id)
	}
}

// requireStays checks, every few milliseconds for d, that the pool shows
// state.
func (w *watchedPool) requireStays(t *testing.T, state lifecycle.State, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		require.Equal(t, state, w.comp.State(), "last error: %s", w.comp.Status().LastError)
	}
}

// degradeLimit is how soon after its server stopped a pool must show
// degraded: its probes come every unreachableAfter/2 while its Lease
// waits, and the one that finds them failing for unreachableAfter
// degrades it (about 1.5 x unreachableAfter); the rest is slack for a
// loaded machine.
const degradeLimit = 2*unreachableAfter + 3*time.Second

// A pool whose server stops while its Lease waits on an empty queue
// shows degraded within its UnreachableAfter bound, with the reason, and
// running again once the server is back, although no task came; and so
// it does again when the server stops once more after the recovery, the
// pool idle. (Before: the Lease only waited for the reconnect, nothing
// failed, and the pool showed running throughout the outage.)
func TestPoolShowsDegradedWhileItsServerIsDownAndRunningOnceItIsBack(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	srv := startServer(t, dir, "127.0.0.1:0", nil)
	addr := srv.NATS().Addr().String()
	b := openBackend(t, jetstream.Config{URLs: []string{srv.ClientURL()}, AckWait: 2 * time.Second})
	w := newWatchedPool(t, b)
	require.NoError(t, w.p.Start(ctx))
	w.requireRuns(t, "before")
	w.requireStays(t, lifecycle.Running, 3*unreachableAfter) // idle, its probes answered

	for round := range 2 {
		require.NoError(t, srv.Shutdown(ctx))
		stopped := time.Now()
		w.requireDegradedWithin(t, stopped, degradeLimit)
		w.requireStays(t, lifecycle.Degraded, unreachableAfter)

		srv = startServer(t, dir, addr, nil)
		w.requireRuns(t, fmt.Sprintf("after-%d", round))
	}
}

// A pool started while its server is down waits in its first Lease,
// which sets the queue up once the server is back: meanwhile it shows
// degraded (the connection is down), and running once the queue is set
// up. (Before: it showed running.)
func TestPoolStartedWhileItsServerIsDownShowsDegradedUntilItIsBack(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	srv := startServer(t, dir, "127.0.0.1:0", nil)
	addr := srv.NATS().Addr().String()
	b := openBackend(t, jetstream.Config{URLs: []string{srv.ClientURL()}, AckWait: 2 * time.Second})
	w := newWatchedPool(t, b)
	require.NoError(t, srv.Shutdown(ctx))
	stopped := time.Now()
	require.NoError(t, w.p.Start(ctx))
	w.requireDegradedWithin(t, stopped, degradeLimit)

	startServer(t, dir, addr, nil)
	w.requireRuns(t, "after")
}

// A slow server that answers, each request taking longer than the
// pool's UnreachableAfter but less than a probe's timeout (the network
// to it freezes for 2s at a time), never shows the pool degraded: a
// probe that waits is not one that fails.
func TestPoolOfASlowServerDoesNotFlap(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, proxy := proxiedServer(t)
	b := openBackend(t, jetstream.Config{URLs: []string{"nats://" + proxy.Addr()}, AckWait: 5 * time.Second})
	w := newWatchedPool(t, b)
	require.NoError(t, w.p.Start(ctx))
	w.requireRuns(t, "before")

	done := make(chan struct{})
	froze := make(chan int, 1)
	go func() {
		defer close(froze)
		n := 0
		defer func() { froze <- n }()
		for {
			proxy.Freeze()
			n++
			select {
			case <-done:
				proxy.Thaw()
				return
			case <-time.After(2 * unreachableAfter):
			}
			proxy.Thaw()
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	w.requireStays(t, lifecycle.Running, 8*unreachableAfter)
	close(done)
	require.GreaterOrEqual(t, <-froze, 3)
	w.requireRuns(t, "after")
}
