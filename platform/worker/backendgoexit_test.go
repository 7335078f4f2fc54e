package worker_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// goexitBackend is a memory backend whose first call of op ends its
// goroutine with runtime.Goexit (a backend's code calling testing's
// FailNow, say) without doing anything.
type goexitBackend struct {
	*memory.Backend
	op   string
	done atomic.Bool
}

func (b *goexitBackend) exit(op string) {
	if op == b.op && b.done.CompareAndSwap(false, true) {
		runtime.Goexit()
	}
}

func (b *goexitBackend) Ack(ctx context.Context, d *queue.Delivery) error {
	b.exit(worker.OpAck)
	return b.Backend.Ack(ctx, d)
}

func (b *goexitBackend) Retry(ctx context.Context, d *queue.Delivery, at time.Time) error {
	b.exit(worker.OpRetry)
	return b.Backend.Retry(ctx, d, at)
}

func (b *goexitBackend) DeadLetter(ctx context.Context, d *queue.Delivery, reason string) error {
	b.exit(worker.OpDeadLetter)
	return b.Backend.DeadLetter(ctx, d, reason)
}

func (b *goexitBackend) Release(ctx context.Context, d *queue.Delivery) error {
	b.exit(worker.OpRelease)
	return b.Backend.Release(ctx, d)
}

// TestBackendGoexitInASettlementIsObserved: a settlement whose backend
// call ends the worker's goroutine (runtime.Goexit) is a failed
// settlement of an unknown outcome, like one that panics: counted
// (SettleFailed), and the observer that saw the delivery start hears it
// finish, returned, with the call named in its error. The worker is
// replaced and the delivery comes back when its lease ends. The
// observer used to hear nothing of that delivery (telemetry's span never
// ended), and the refusal went uncounted.
func TestBackendGoexitInASettlementIsObserved(t *testing.T) {
	t.Parallel()
	handlers := map[string]func() error{
		worker.OpAck:        func() error { return nil },
		worker.OpRetry:      func() error { return errors.New("try again") },
		worker.OpDeadLetter: func() error { return task.Permanentf("no such order") },
	}
	handlerErrs := map[string]string{worker.OpRetry: "try again", worker.OpDeadLetter: "no such order"}
	for op, result := range handlers {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			be := &goexitBackend{Backend: newMemory(t), op: op}
			obs := &startsAndEnds{}
			cfg := fast
			cfg.Concurrency, cfg.Lease = 1, shortLease
			p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Observer: obs,
				Router: mustRouter(t, task.Route{Kind: "k", MaxAttempts: 3, Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
					return result()
				})})})
			require.NoError(t, err)
			require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "t1", Kind: "k", Queue: "default"}))
			require.NoError(t, p.Start(context.Background()))
			t.Cleanup(func() { require.NoError(t, p.Stop(context.Background())) })

			require.Eventually(t, func() bool { return p.Stats().WorkerRestarts == 1 && p.Stats().Processed >= 1 },
				10*time.Second, time.Millisecond, "stats %+v", p.Stats())
			require.Eventually(t, func() bool { outs, _ := obs.snapshot(); return len(outs) >= 1 }, 5*time.Second, time.Millisecond,
				"the observer saw %d deliveries start, none finish", obs.starts.Load())
			outs, errs := obs.snapshot()
			require.Equal(t, task.Returned, outs[0], "whether the backend settled it is unknown")
			require.ErrorContains(t, errs[0], "runtime.Goexit")
			if herr := handlerErrs[op]; herr != "" {
				// The handler failed: its error, with the failed
				// settlement added (telemetry counts a failed handler).
				require.ErrorContains(t, errs[0], herr)
				require.NotErrorIs(t, errs[0], task.ErrStopped)
				_, alone := errs[0].(*task.SettleError)
				require.False(t, alone, "a failed handler reported as a success whose settlement failed")
			} else {
				var se *task.SettleError
				require.ErrorAs(t, errs[0], &se, "the handler succeeded: the settlement failed")
			}
			st := p.Stats()
			require.Equal(t, int64(1), map[string]int64{worker.OpAck: st.SettleFailed.Ack, worker.OpRetry: st.SettleFailed.Retry,
				worker.OpDeadLetter: st.SettleFailed.DeadLetter}[op], "the failed settlement is counted: %+v", st.SettleFailed)
			require.Zero(t, st.Succeeded+st.Retried+st.Dead, "an outcome that did not happen")
			// The delivery comes back once its lease ended and is settled then.
			require.Eventually(t, func() bool { outs, _ := obs.snapshot(); return len(outs) == 2 }, 10*time.Second, time.Millisecond)
			require.Equal(t, obs.starts.Load(), int64(2))
		})
	}
}

// TestBackendGoexitInStopsGiveBack: a Release that ends its goroutine
// (runtime.Goexit) while Stop gives back the delivery of a handler that
// ignores its cancellation is a failed release: the handler, when it
// returns, is reported returned, and the pool ends. The handler's
// settlement used to wait for ever for the outcome of that give-back:
// its worker never ended, and no later Stop returned nil.
func TestBackendGoexitInStopsGiveBack(t *testing.T) {
	t.Parallel()
	be := &goexitBackend{Backend: newMemory(t), op: worker.OpRelease}
	obs := &startsAndEnds{}
	started, gate := make(chan struct{}), make(chan struct{})
	cfg := fast
	cfg.Concurrency, cfg.Lease = 1, shortLease
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Observer: obs,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			close(started)
			<-gate // ignores its cancellation
			return nil
		})})})
	require.NoError(t, err)
	require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "t1", Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(context.Background()))
	within(t, started, "the handler to start")

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	require.ErrorContains(t, p.Stop(ctx), "handlers that ignore cancellation")
	close(gate)

	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, p.Stop(ctx), "the pool ends once the handler returned")
	outs, _ := obs.snapshot()
	require.Equal(t, []task.Outcome{task.Returned}, outs)
	require.Equal(t, int64(1), p.Stats().SettleFailed.Release)
}

// TestBackendGoexitInStopsBufferGiveBack: a Release that ends its
// goroutine (runtime.Goexit) while Stop gives back the hand-over buffer
// ends no goroutine of Stop's: Stop still waits for the handler in
// flight, which its drain cancels and whose delivery goes back, and
// returns once the pool ended. The Goexit used to end Stop's shutdown
// goroutine, which on its way out reported the pool ended: Stop returned
// nil at once, while the handler still ran.
func TestBackendGoexitInStopsBufferGiveBack(t *testing.T) {
	t.Parallel()
	be := &goexitBackend{Backend: newMemory(t), op: worker.OpRelease}
	obs := &startsAndEnds{}
	h := newHolder()
	cfg := fast
	cfg.Concurrency, cfg.BatchSize, cfg.Lease = 1, 1, shortLease
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Observer: obs,
		Router: mustRouter(t, h.route("hold"))})
	require.NoError(t, err)
	for _, id := range []string{"a", "b"} {
		require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: id, Kind: "hold", Queue: "default"}))
	}
	require.NoError(t, p.Start(context.Background()))
	t.Cleanup(h.release)
	require.Eventually(t, func() bool {
		st, err := be.Stats(context.Background(), "default")
		return err == nil && st.InFlight == 2 && p.Stats().InFlight == 1
	}, 10*time.Second, time.Millisecond, "one runs, one waits in the buffer")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, p.Stop(ctx))
	outs, _ := obs.snapshot()
	require.Equal(t, []task.Outcome{task.Returned}, outs, "Stop returned before the handler in flight ended")
	require.Zero(t, p.Stats().InFlight)
}

// leaseGoexit is a memory backend whose first Lease ends its goroutine
// with runtime.Goexit.
type leaseGoexit struct {
	*memory.Backend
	done atomic.Bool
}

func (b *leaseGoexit) Lease(ctx context.Context, q string, n int, leaseFor time.Duration) ([]*queue.Delivery, error) {
	if b.done.CompareAndSwap(false, true) {
		runtime.Goexit()
	}
	return b.Backend.Lease(ctx, q, n, leaseFor)
}

// TestBackendGoexitInLeaseKeepsTheFetcher: a Lease that ends the
// fetcher's goroutine (runtime.Goexit) is a failed lease: the pool is
// degraded, leases again after a back-off, and runs its tasks; Stop
// returns nil. The fetcher used to end for good: the pool, showing
// running, never leased again.
func TestBackendGoexitInLeaseKeepsTheFetcher(t *testing.T) {
	t.Parallel()
	be := &leaseGoexit{Backend: newMemory(t)}
	var runs atomic.Int64
	cfg := fast
	cfg.Concurrency = 1
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			runs.Add(1)
			return nil
		})})})
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background()))
	require.Eventually(t, be.done.Load, 5*time.Second, time.Millisecond)
	require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "t1", Kind: "k", Queue: "default"}))
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 1 }, 10*time.Second, time.Millisecond,
		"the pool leases again: stats %+v", p.Stats())
	require.Contains(t, p.Stats().LastError, "runtime.Goexit")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, p.Stop(ctx))
	require.Equal(t, int64(1), runs.Load())
}

// cancelGoexit is a memory backend whose first Lease waits for its ctx
// to end and then ends its goroutine with runtime.Goexit.
type cancelGoexit struct {
	*memory.Backend
	waiting, done atomic.Bool
}

func (b *cancelGoexit) Lease(ctx context.Context, q string, n int, leaseFor time.Duration) ([]*queue.Delivery, error) {
	if !b.done.Load() {
		b.waiting.Store(true)
		<-ctx.Done()
		b.done.Store(true)
		runtime.Goexit()
	}
	return b.Backend.Lease(ctx, q, n, leaseFor)
}

// TestBackendGoexitInALeasePauseCancelled: a Lease that ends the
// fetcher's goroutine (runtime.Goexit) once Pause cancelled it is no
// failed Lease, as one that fails then is not: the pool shows paused,
// and once resumed leases and runs its tasks at once. It was degraded,
// showing a failed Lease while paused, and stayed so after Resume until
// a Lease returned tasks.
func TestBackendGoexitInALeasePauseCancelled(t *testing.T) {
	t.Parallel()
	be := &cancelGoexit{Backend: newMemory(t)}
	reg := lifecycle.NewRegistry(nil, nil)
	cfg := fast
	cfg.Concurrency = 1
	p, err := worker.NewPool(worker.PoolParams{Queue: "q", Backend: be, Registry: reg, Config: cfg,
		Router: mustRouter(t, task.Route{Kind: "k", Queue: "q", Handler: task.HandlerFunc(func(context.Context, *task.Task) error { return nil })})})
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, p.Stop(context.Background())) })
	comp, ok := reg.Get("pool/q")
	require.True(t, ok)
	require.Eventually(t, be.waiting.Load, 10*time.Second, time.Millisecond, "the Lease to wait")

	p.Pause()
	require.Eventually(t, func() bool { return p.Stats().LastError != "" }, 10*time.Second, time.Millisecond,
		"the Lease to end its goroutine")
	require.Never(t, func() bool { return comp.State() == lifecycle.Degraded }, 300*time.Millisecond, time.Millisecond,
		"degraded while paused")
	require.Equal(t, lifecycle.Paused, comp.State(), "%v", comp.Status())
	p.Resume()
	require.Equal(t, lifecycle.Running, comp.State(), "%v", comp.Status())
	require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "t1", Kind: "k", Queue: "q"}))
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 1 }, 10*time.Second, time.Millisecond)
}

// extendGoexit is a memory backend whose first Extend ends its goroutine
// with runtime.Goexit; it counts the Extend calls.
type extendGoexit struct {
	*memory.Backend
	id    string // only the Extend of this task ("": any)
	calls atomic.Int64
	done  atomic.Bool
}

func (b *extendGoexit) Extend(ctx context.Context, d *queue.Delivery, leaseFor time.Duration) error {
	b.calls.Add(1)
	if (b.id == "" || d.Task.ID == b.id) && b.done.CompareAndSwap(false, true) {
		runtime.Goexit()
	}
	return b.Backend.Extend(ctx, d, leaseFor)
}

// TestBackendGoexitInExtendKeepsTheHousekeeper: an Extend that ends the
// housekeeper's goroutine (runtime.Goexit) is a failed extension: the
// housekeeper goes on extending the leases of running handlers, and Stop
// returns nil. The housekeeper used to end for good: no lease was
// extended again (long handlers' tasks were delivered again while they
// ran), and the stall check stopped.
func TestBackendGoexitInExtendKeepsTheHousekeeper(t *testing.T) {
	t.Parallel()
	be := &extendGoexit{Backend: newMemory(t)}
	cfg := fast
	cfg.Concurrency, cfg.Lease = 1, 400*time.Millisecond
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
			select {
			case <-time.After(3 * time.Second):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})})})
	require.NoError(t, err)
	require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "t1", Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(context.Background()))
	require.Eventually(t, func() bool { return be.calls.Load() >= 3 }, 10*time.Second, time.Millisecond,
		"extensions after the one that ended its goroutine")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, p.Stop(ctx))
}

// TestBackendGoexitInRenewalGivesTheDeliveryBack: an Extend that ends a
// worker's goroutine (runtime.Goexit) while it renews the lease of a
// delivery that waited in the hand-over buffer gives that delivery back
// unrun: it runs again at once, the same attempt, and the pool keeps its
// reservation. It used to be lost with the worker, neither run nor given
// back: it came back when its lease ended, as a new attempt, and the
// pool held one delivery fewer for good.
func TestBackendGoexitInRenewalGivesTheDeliveryBack(t *testing.T) {
	t.Parallel()
	be := &extendGoexit{Backend: newMemory(t), id: "B"}
	var (
		mu       sync.Mutex
		attempts = map[string][]int{}
	)
	h := newHolder()
	cfg := fast
	cfg.Concurrency, cfg.BatchSize, cfg.Lease = 1, 2, slowLease
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
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
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 2 }, 10*time.Second, time.Millisecond)
	require.True(t, be.done.Load(), "B's renewal ended its goroutine")
	mu.Lock()
	require.Equal(t, map[string][]int{"A": {1}, "B": {1}}, attempts, "B went back unrun, its attempt uncounted")
	mu.Unlock()
	st := p.Stats()
	require.Equal(t, int64(1), st.WorkerRestarts)
	require.Equal(t, int64(1), st.Returned)
	requireHoldsAll(t, p, be, h)
}

// probeGoexit is a memory backend whose first Probe ends its goroutine
// with runtime.Goexit and whose later ones fail.
type probeGoexit struct {
	*memory.Backend
	calls atomic.Int64
}

func (b *probeGoexit) Probe(context.Context, string) error {
	if b.calls.Add(1) == 1 {
		runtime.Goexit()
	}
	return errors.New("backend: connection reconnecting")
}

// TestBackendGoexitInProbeKeepsTheWatcher: a Probe that ends the lease
// watcher's goroutine (runtime.Goexit) is a failed probe: the watcher
// goes on probing, and a pool whose probes fail for UnreachableAfter
// while its Lease waits shows degraded. The watcher used to end for
// good: the pool probed no more and showed running.
func TestBackendGoexitInProbeKeepsTheWatcher(t *testing.T) {
	t.Parallel()
	be := &probeGoexit{Backend: newMemory(t)}
	reg := lifecycle.NewRegistry(nil, nil)
	cfg := fast
	cfg.UnreachableAfter = 300 * time.Millisecond
	p, err := worker.NewPool(worker.PoolParams{Queue: "q", Backend: be, Registry: reg, Config: cfg,
		Router: mustRouter(t, task.Route{Kind: "k", Queue: "q", Handler: task.HandlerFunc(func(context.Context, *task.Task) error { return nil })})})
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background()))
	comp, ok := reg.Get("pool/q")
	require.True(t, ok)
	require.Eventually(t, func() bool { return comp.State() == lifecycle.Degraded }, 10*time.Second, time.Millisecond,
		"degraded by its failing probes (%d probes)", be.calls.Load())
	require.Contains(t, comp.Status().LastError, "backend: connection reconnecting")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, p.Stop(ctx))
}

// TestBackendGoexitSettlingACrashedWorkersTask: a Retry that ends its
// goroutine (runtime.Goexit) while the pool fails the attempt of a
// worker that died (its handler called runtime.Goexit) is a failed
// settlement: the worker is replaced all the same, the observer hears
// the delivery returned, and the task, delivered again once its lease
// ended, runs. The second Goexit used to end the pool's handling of the
// first: no worker replaced it (a pool of one ran nothing again), its
// delivery stayed in flight, and the observer heard nothing.
func TestBackendGoexitSettlingACrashedWorkersTask(t *testing.T) {
	t.Parallel()
	be := &goexitBackend{Backend: newMemory(t), op: worker.OpRetry}
	obs := &startsAndEnds{}
	var runs atomic.Int64
	cfg := fast
	cfg.Concurrency, cfg.Lease = 1, shortLease
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Observer: obs,
		Router: mustRouter(t, task.Route{Kind: "k", MaxAttempts: 3, Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			if runs.Add(1) == 1 {
				runtime.Goexit()
			}
			return nil
		})})})
	require.NoError(t, err)
	require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "t1", Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, p.Stop(context.Background())) })

	// The pool counts a delivery it finished with (Processed, InFlight)
	// after its outcome and the observer's Finished: await both.
	require.Eventually(t, func() bool {
		st := p.Stats()
		return st.Succeeded == 1 && st.Processed == 2 && st.InFlight == 0
	}, 10*time.Second, time.Millisecond, "the task runs again: %+v", p.Stats())
	require.Eventually(t, func() bool { outs, _ := obs.snapshot(); return len(outs) == 2 }, 5*time.Second, time.Millisecond)
	outs, errs := obs.snapshot()
	require.Equal(t, []task.Outcome{task.Returned, task.Succeeded}, outs)
	require.ErrorContains(t, errs[0], "runtime.Goexit")
	st := p.Stats()
	require.Equal(t, int64(1), st.SettleFailed.Retry)
	require.Equal(t, int64(1), st.WorkerRestarts)
	require.Equal(t, int64(2), st.Processed)
	require.Equal(t, 1, st.Workers)
	require.Zero(t, st.InFlight)
}
