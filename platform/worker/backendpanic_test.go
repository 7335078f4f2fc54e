package worker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/queue/queuetest"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// refusals are the two ways a backend call fails: it returns an error
// with msg, or it panics with msg (a broken backend), times times (zero:
// every call). The pool handles both alike: the settlement tests run
// with each.
var refusals = map[string]func(msg string, times int) queuetest.Fault{
	"error": func(msg string, times int) queuetest.Fault {
		return queuetest.Fault{Err: errors.New(msg), Times: times}
	},
	"panic": func(msg string, times int) queuetest.Fault { return queuetest.Fault{Panic: msg, Times: times} },
}

// holder holds the tasks of its routes until release: a test fills the
// pool with them to see how many deliveries it holds.
type holder struct {
	gate chan struct{}
	once sync.Once
}

func newHolder() *holder { return &holder{gate: make(chan struct{})} }

// route is the route of kind whose handler h holds.
func (h *holder) route(kind string) task.Route {
	return task.Route{Kind: kind, Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
		select {
		case <-h.gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})}
}

func (h *holder) release() { h.once.Do(func() { close(h.gate) }) }

// requireHoldsAll checks that p, on be (queue "default"), still holds as
// many deliveries as its config allows (Concurrency + BatchSize): it
// enqueues that many tasks of kind "hold" (h's route), waits until the backend has leased all
// of them, and lets them finish. A reservation the pool lost for good
// shows here: it never leases the last of them.
func requireHoldsAll(t *testing.T, p *worker.Pool, be queue.Backend, h *holder) {
	t.Helper()
	ctx := context.Background()
	n := p.Config().Concurrency + p.Config().BatchSize
	before := p.Stats().Processed
	for range n {
		require.NoError(t, be.Enqueue(ctx, &task.Task{Kind: "hold", Queue: "default"}))
	}
	require.Eventually(t, func() bool {
		st, err := be.Stats(ctx, "default")
		return err == nil && st.InFlight == int64(n) && st.Ready == 0
	}, 10*time.Second, time.Millisecond, "the pool holds %d deliveries", n)
	h.release()
	require.Eventually(t, func() bool { return p.Stats().Processed == before+int64(n) }, 10*time.Second, time.Millisecond)
}

// TestPanickingRenewalKeepsTheWorkerAndItsSlot: an Extend that panics
// while the pool renews the lease of a delivery that waited in the
// hand-over buffer is a failed renewal: logged with the call and the
// task, and the delivery runs on what is left of its lease, as after an
// error. The panic used to kill the worker outside its delivery: the
// delivery neither ran nor went back (it came back as a new attempt once
// its lease ended), and the pool lost its reservation for good.
func TestPanickingRenewalKeepsTheWorkerAndItsSlot(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.ErrorLevel)
	be := queuetest.NewFaulty(newMemory(t))
	be.Inject(queuetest.OpExtend, queuetest.Fault{Panic: "extend bug", Times: 1,
		Match: func(tk *task.Task) bool { return tk.ID == "B" }})
	var (
		mu       sync.Mutex
		attempts = map[string][]int{}
	)
	h := newHolder()
	cfg := fast
	cfg.Concurrency, cfg.BatchSize, cfg.Lease = 1, 2, slowLease
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Logger: zap.New(core),
		Router: mustRouter(t, h.route("hold"), task.Route{Kind: "k", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
			mu.Lock()
			attempts[tk.ID] = append(attempts[tk.ID], tk.Attempt)
			mu.Unlock()
			if tk.ID == "A" {
				time.Sleep(5 * slowLease / 8) // B waits in the buffer: renewed before it runs
			}
			return nil
		})})})
	require.NoError(t, err)
	require.NoError(t, be.Enqueue(context.Background(),
		&task.Task{ID: "A", Kind: "k", Queue: "default"}, &task.Task{ID: "B", Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(context.Background()))
	t.Cleanup(func() {
		h.release()
		require.NoError(t, p.Stop(context.Background()))
	})
	require.Eventually(t, func() bool { return p.Stats().Processed == 2 }, slowLease+10*time.Second, time.Millisecond)

	st := p.Stats()
	require.Zero(t, st.WorkerRestarts, "the panic did not kill the worker")
	require.Zero(t, st.Expired)
	require.Equal(t, int64(2), st.Succeeded)
	require.Contains(t, st.LastError, "backend extend panicked: extend bug")
	mu.Lock()
	require.Equal(t, map[string][]int{"A": {1}, "B": {1}}, attempts, "B ran once, on its first lease")
	mu.Unlock()
	entries := logs.FilterMessage("queue backend panicked").AllUntimed()
	require.Len(t, entries, 1)
	fields := entries[0].ContextMap()
	require.Equal(t, "extend", fields["op"])
	require.Equal(t, "B", fields["task"])
	requireHoldsAll(t, p, be, h)
}

// TestPanickingExtensionKeepsTheHousekeeper: an Extend that panics in
// the housekeeper's round (a running handler's lease) is a failed
// extension: logged, and the housekeeper goes on extending the others.
// The panic used to end the housekeeper's goroutine, which has no
// recover: the process died.
func TestPanickingExtensionKeepsTheHousekeeper(t *testing.T) {
	t.Parallel()
	be := queuetest.NewFaulty(newMemory(t))
	extended := map[string]chan struct{}{"one": make(chan struct{}), "two": make(chan struct{})}
	var once sync.Map
	entered := func(tk *task.Task) {
		if _, done := once.LoadOrStore(tk.ID, true); !done {
			close(extended[tk.ID])
		}
	}
	be.Inject(queuetest.OpExtend, queuetest.Fault{Entered: entered, Panic: "extend bug", Times: 1,
		Match: func(tk *task.Task) bool { return tk.ID == "one" }})
	be.Inject(queuetest.OpExtend, queuetest.Fault{Entered: entered, Match: func(tk *task.Task) bool { return tk.ID == "two" }})
	cfg := fast
	cfg.Concurrency, cfg.Lease = 2, slowLease
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(ctx context.Context, tk *task.Task) error {
			select {
			case <-extended[tk.ID]: // its lease was extended (or the extension panicked)
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})})})
	require.NoError(t, err)
	require.NoError(t, be.Enqueue(context.Background(),
		&task.Task{ID: "one", Kind: "k", Queue: "default"}, &task.Task{ID: "two", Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(context.Background()))
	require.Eventually(t, func() bool { return p.Stats().Processed == 2 }, slowLease+10*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, p.Stop(ctx))

	st := p.Stats()
	require.Equal(t, int64(2), st.Succeeded, "both acked within their leases")
	require.Zero(t, st.SettleFailed.Total())
	require.Zero(t, st.WorkerRestarts)
	require.Contains(t, st.LastError, "backend extend panicked: extend bug")
}

// TestPanickingLeaseIsAFailedLease: a Lease that panics is a failed lease
// (retried after a back-off, the reservation given back); the fetcher
// used to die of it, with the process.
func TestPanickingLeaseIsAFailedLease(t *testing.T) {
	t.Parallel()
	be := queuetest.NewFaulty(newMemory(t))
	be.Inject(queuetest.OpLease, queuetest.Fault{Panic: "lease bug", Times: 1})
	h := newHolder()
	cfg := fast
	cfg.Concurrency, cfg.BatchSize = 2, 2
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Router: mustRouter(t, h.route("hold"))})
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background()))
	t.Cleanup(func() {
		h.release()
		require.NoError(t, p.Stop(context.Background()))
	})
	requireHoldsAll(t, p, be, h)
	require.Contains(t, p.Stats().LastError, "backend lease panicked: lease bug")
}

// panickingStats is a memory backend whose Stats panics.
type panickingStats struct{ *memory.Backend }

func (panickingStats) Stats(context.Context, string) (queue.Stats, error) { panic("stats bug") }

// TestPanickingStatsFailsTheCheck: a Stats that panics in the stall check
// fails the check with an error; it used to panic in Check's caller (the
// housekeeper: the process).
func TestPanickingStatsFailsTheCheck(t *testing.T) {
	t.Parallel()
	cfg := fast
	cfg.StallAfter = time.Millisecond
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: panickingStats{newMemory(t)},
		Router: mustRouter(t, newHolder().route("hold"))})
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, p.Stop(context.Background())) })
	// Once past StallAfter, Check asks the backend.
	require.Eventually(t, func() bool {
		err := p.Check(context.Background())
		return err != nil && strings.Contains(err.Error(), "backend stats panicked: stats bug")
	}, 10*time.Second, time.Millisecond)
}

// TestPanickingReleaseAtPause: give-backs that panic when Pause returns
// the hand-over buffer are failed releases (counted, not returned; the
// deliveries come back when their leases end) and the pool keeps every
// slot. Pause used to panic in its caller, the reservations of the
// buffered deliveries lost.
func TestPanickingReleaseAtPause(t *testing.T) {
	t.Parallel()
	be := queuetest.NewFaulty(newMemory(t))
	be.Inject(queuetest.OpRelease, queuetest.Fault{Panic: "release bug"})
	first, h := newHolder(), newHolder()
	cfg := fast
	cfg.Concurrency, cfg.BatchSize, cfg.Lease = 1, 2, shortLease
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
		Router: mustRouter(t, first.route("first"), h.route("hold"))})
	require.NoError(t, err)
	ctx := context.Background()
	for range 3 {
		require.NoError(t, be.Enqueue(ctx, &task.Task{Kind: "first", Queue: "default"}))
	}
	require.NoError(t, p.Start(ctx))
	t.Cleanup(func() {
		first.release()
		h.release()
		require.NoError(t, p.Stop(context.Background()))
	})
	require.Eventually(t, func() bool {
		st, err := be.Stats(ctx, "default")
		return err == nil && st.InFlight == 3 && p.Stats().InFlight == 1
	}, 10*time.Second, time.Millisecond, "one running, two in the hand-over buffer")
	p.Pause()
	st := p.Stats()
	require.Equal(t, worker.SettleFailures{Release: 2}, st.SettleFailed)
	require.Zero(t, st.Returned)
	require.Contains(t, st.LastError, "backend release panicked: release bug")
	be.Clear(queuetest.OpRelease)
	first.release()
	p.Resume()
	// The two unreleased deliveries come back when their leases end.
	require.Eventually(t, func() bool { return p.Stats().Processed == 3 }, 10*time.Second, time.Millisecond)
	requireHoldsAll(t, p, be, h)
}
