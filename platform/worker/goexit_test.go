package worker_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
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
	// The pool counts a delivery it finished with (Processed, InFlight)
	// after its outcome (Succeeded): await both deliveries finished.
	require.Eventually(t, func() bool {
		st := p.Stats()
		return st.Succeeded == 1 && st.Processed == 2 && st.InFlight == 0
	}, 10*time.Second, time.Millisecond, "stats %+v", p.Stats())
	st := p.Stats()
	require.Equal(t, int64(2), runs.Load())
	require.Equal(t, int64(1), st.WorkerRestarts)
	require.Equal(t, int64(1), st.Failed)
	require.Equal(t, int64(1), st.Retried, "the attempt counted")
	require.Contains(t, st.LastError, "runtime.Goexit")
	require.Equal(t, 1, st.Workers)
	require.Zero(t, st.InFlight)
}

// startsAndEnds counts the deliveries the observer saw start and records
// the outcome and error of each it saw finish.
type startsAndEnds struct {
	outcomes
	starts atomic.Int64
}

func (o *startsAndEnds) Starting(ctx context.Context, _ *task.Task) context.Context {
	o.starts.Add(1)
	return ctx
}

// TestCrashedDeliveryIsObserved: the delivery of a worker that crashed
// (here a handler calling runtime.Goexit) is settled by the pool, and
// the observer hears how it ended, like any other: retried with the
// crash as its error, then dead-lettered at the last attempt. The
// observer saw it start but never finish: telemetry's
// plba.task.processed, plba.task.failed, plba.task.retried and
// plba.task.dead_lettered missed what Stats counted, and the delivery's
// consumer span was never ended.
func TestCrashedDeliveryIsObserved(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	obs := &startsAndEnds{}
	cfg := fast
	cfg.Concurrency = 1
	rt, err := worker.New(worker.Params{
		Routes: []task.Route{{Kind: "k", MaxAttempts: 2, Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			runtime.Goexit()
			return nil
		})}},
		Backend: be, Config: worker.Config{"default": cfg}, Observer: obs,
	})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, rt.Stop(context.Background())) })
	require.NoError(t, rt.Producer().Enqueue(context.Background(), &task.Task{Kind: "k"}))

	p, _ := rt.Pool("default")
	// The pool counts a crashed worker's delivery as processed after its
	// outcome (Dead): await both deliveries finished.
	require.Eventually(t, func() bool {
		st := p.Stats()
		return st.Dead == 1 && st.Processed == 2 && st.InFlight == 0
	}, 10*time.Second, time.Millisecond, "stats %+v", p.Stats())
	st := p.Stats()
	require.Equal(t, int64(2), st.WorkerRestarts)
	require.Equal(t, int64(1), st.Retried)
	require.Equal(t, int64(2), st.Processed)
	require.Eventually(t, func() bool { outs, _ := obs.snapshot(); return len(outs) == 2 }, 5*time.Second, time.Millisecond,
		"the observer saw %d deliveries start and these finish: %v", obs.starts.Load(), func() []task.Outcome { o, _ := obs.snapshot(); return o }())
	outs, errs := obs.snapshot()
	require.Equal(t, []task.Outcome{task.Retried, task.DeadLettered}, outs)
	for _, err := range errs {
		require.ErrorContains(t, err, "runtime.Goexit")
	}
	require.Equal(t, int64(2), obs.starts.Load())
}

// TestWorkerCrashedAfterSettlementCountsTheDelivery: a worker that dies
// after its delivery was settled (here in the observer's Finished) still
// finished with it: Stats.Processed and LastFinished count it. They
// missed it, so Processed fell behind Succeeded.
func TestWorkerCrashedAfterSettlementCountsTheDelivery(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	rt, err := worker.New(worker.Params{
		Routes:   []task.Route{{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error { return nil })}},
		Backend:  be,
		Config:   worker.Config{"default": worker.PoolConfig{Concurrency: 1}},
		Observer: &panickyObserver{},
	})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, rt.Stop(context.Background())) })
	require.NoError(t, rt.Producer().Enqueue(context.Background(), &task.Task{Kind: "k"}))
	p, _ := rt.Pool("default")
	// InFlight falls last, once Processed and LastFinished are counted.
	require.Eventually(t, func() bool {
		st := p.Stats()
		return st.WorkerRestarts == 1 && st.Processed == 1 && st.InFlight == 0
	}, 10*time.Second, time.Millisecond, "stats %+v", p.Stats())
	st := p.Stats()
	require.Equal(t, int64(1), st.Succeeded)
	require.False(t, st.LastFinished.IsZero())
	require.Zero(t, st.InFlight)
}

// TestHandlerGoexitEndsItsContext: the context of a handler that called
// runtime.Goexit ends when its worker dies, as when a handler returns,
// and no longer holds its deadline's timer (and its hook on the pool's
// context) until the deadline: here an hour.
func TestHandlerGoexitEndsItsContext(t *testing.T) {
	t.Parallel()
	ctxs := make(chan context.Context, 1)
	cfg := fast
	cfg.Concurrency = 1
	cfg.TaskTimeout = time.Hour
	b := setup(t, cfg, task.Route{Kind: "k", MaxAttempts: 1, Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
		_ = ctx.Done() // armed: the deadline's timer runs
		ctxs <- ctx
		runtime.Goexit()
		return nil
	})})
	b.enqueue(t, &task.Task{Kind: "k"})
	ctx := within(t, ctxs, "the handler to run")
	p := b.pool(t, "default")
	require.Eventually(t, func() bool { return p.Stats().WorkerRestarts == 1 }, 10*time.Second, time.Millisecond)
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the context of a handler that called runtime.Goexit still runs")
	}
	require.ErrorIs(t, ctx.Err(), context.Canceled)
}
