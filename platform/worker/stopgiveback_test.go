package worker_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/queue/queuetest"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// ctxRelease is a memory backend whose Release honours its ctx, as a
// network backend's does: a Release whose ctx ended fails without
// giving anything back.
type ctxRelease struct{ *memory.Backend }

func (b ctxRelease) Release(ctx context.Context, d *queue.Delivery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.Backend.Release(ctx, d)
}

// TestHandlerCancelledByStopsEndedCtxIsGivenBack: a handler that honours
// its cancellation, cancelled because Stop's ctx ended, returns at once;
// its delivery goes back to the queue (Release, within a short grace of
// its own), is counted and reported as returned, and Stop, whose pool
// ended within its grace, returns nil. The give-back used to run with
// Stop's ended ctx: it failed before reaching the backend (counted as a
// failed release, "could not be given back in time"), the observer was
// told task.Returned of a delivery still leased, and the task waited out
// its lease (30 s here) to be delivered again as a new attempt; the
// deliveries of handlers that ignore their cancellation, which Stop gives
// back itself, got that grace all along.
func TestHandlerCancelledByStopsEndedCtxIsGivenBack(t *testing.T) {
	t.Parallel()
	be := ctxRelease{newMemory(t)}
	obs := &outcomes{}
	started := make(chan struct{})
	cfg := fast
	cfg.Concurrency = 1
	cfg.Lease = 30 * time.Second
	cfg.DrainTimeout = time.Minute // Stop's ctx ends first
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Observer: obs,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		})})})
	require.NoError(t, err)
	worker.SetStopGrace(p, time.Second) // the handler returns within it on a loaded machine too
	require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "t1", Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(context.Background()))
	within(t, started, "the handler to start")

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Stop's ctx has ended: the handler is cancelled at once
	require.NoError(t, p.Stop(ctx), "the pool ended within Stop's grace")

	st := p.Stats()
	require.Zero(t, st.SettleFailed.Release, "the give-back failed")
	require.Equal(t, int64(1), st.Returned)
	outs, _ := obs.snapshot()
	require.Equal(t, []task.Outcome{task.Returned}, outs)
	qs, err := be.Stats(context.Background(), "default")
	require.NoError(t, err)
	require.Equal(t, int64(1), qs.Ready, "the task is back in the queue, not leased until its lease ends")
	require.Zero(t, qs.InFlight)
}

// ctxRetry is a memory backend whose Retry honours its ctx, as a network
// backend's does.
type ctxRetry struct{ *memory.Backend }

func (b ctxRetry) Retry(ctx context.Context, d *queue.Delivery, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.Backend.Retry(ctx, d, at)
}

// TestSettlementBegunAfterStopsCtxEndedIsTried: a settlement that begins
// only after Stop's ctx ended (here the retry of the attempt of a worker
// that died, its handler calling runtime.Goexit once Stop cancelled it)
// gets a short grace of its own, like a give-back then: the retry is
// made, counted and reported, and Stop returns nil. It ran with the
// ended ctx: failed before reaching the backend, it was counted as a
// failed settlement and as one Stop cut short, and the task waited out
// its lease (30 s here).
func TestSettlementBegunAfterStopsCtxEndedIsTried(t *testing.T) {
	t.Parallel()
	be := ctxRetry{newMemory(t)}
	obs := &outcomes{}
	started := make(chan struct{})
	cfg := fast
	cfg.Concurrency = 1
	cfg.Lease = 30 * time.Second
	cfg.DrainTimeout = time.Minute // Stop's ctx ends first
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Observer: obs,
		Router: mustRouter(t, task.Route{Kind: "k", MaxAttempts: 3, Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
			close(started)
			<-ctx.Done()
			// Within Stop's grace (it gives back itself what a handler
			// still holds after it; a second here), but past the moment
			// Stop's ctx ended for its settlements (the settlement
			// fails, the test with it, only when it begins after that).
			time.Sleep(200 * time.Millisecond)
			runtime.Goexit()
			return nil
		})})})
	require.NoError(t, err)
	worker.SetStopGrace(p, time.Second)
	require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "t1", Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(context.Background()))
	within(t, started, "the handler to start")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, p.Stop(ctx), "the pool ended within Stop's grace, its settlement made")

	st := p.Stats()
	require.Zero(t, st.SettleFailed.Retry, "the retry failed")
	require.Equal(t, int64(1), st.Retried)
	outs, _ := obs.snapshot()
	require.Equal(t, []task.Outcome{task.Retried}, outs)
	qs, err := be.Stats(context.Background(), "default")
	require.NoError(t, err)
	require.Zero(t, qs.InFlight, "the task is back in the queue, not leased until its lease ends")
}

// TestRefusedGiveBackOfAStoppedHandlerIsReported: a Release the backend
// refuses, giving back the delivery of a handler Stop cancelled, is added
// to the error the observer hears (with task.ErrStopped), as every
// refused settlement is. The observer heard the handler's error alone,
// as if its delivery had gone back to the queue.
func TestRefusedGiveBackOfAStoppedHandlerIsReported(t *testing.T) {
	t.Parallel()
	be := queuetest.NewFaulty(newMemory(t))
	be.Inject(queuetest.OpRelease, queuetest.Fault{Err: errors.New("connection reset"), Times: 1})
	obs := &outcomes{}
	started := make(chan struct{})
	cfg := fast
	cfg.Concurrency, cfg.Lease = 1, shortLease
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Observer: obs,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		})})})
	require.NoError(t, err)
	require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "t1", Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(context.Background()))
	within(t, started, "the handler to start")
	require.NoError(t, p.Stop(context.Background()))

	outs, errs := obs.snapshot()
	require.Equal(t, []task.Outcome{task.Returned}, outs)
	require.ErrorIs(t, errs[0], task.ErrStopped)
	require.ErrorContains(t, errs[0], "connection reset", "the refused release")
	require.Equal(t, int64(1), p.Stats().SettleFailed.Release)
}

// TestRefusedGiveBackOfAnAbandonedHandlerIsReported: a Release the
// backend refuses, when Stop gives back the delivery of a handler that
// ignores its cancellation, is added to the error the observer hears
// once the handler returns. The observer heard the handler's outcome
// alone (here a success: no error at all), as if the delivery had gone
// back to the queue.
func TestRefusedGiveBackOfAnAbandonedHandlerIsReported(t *testing.T) {
	t.Parallel()
	be := queuetest.NewFaulty(newMemory(t))
	be.Inject(queuetest.OpRelease, queuetest.Fault{Err: errors.New("connection reset"), Times: 1})
	obs := &outcomes{}
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
	require.NoError(t, p.Stop(ctx))

	outs, errs := obs.snapshot()
	require.Equal(t, []task.Outcome{task.Returned}, outs)
	require.ErrorContains(t, errs[0], "connection reset", "the refused release")
	var se *task.SettleError
	require.ErrorAs(t, errs[0], &se, "the handler succeeded: its settlement failed")
}

// lateRelease is a memory backend whose Release takes delay, ignoring
// its ctx, then gives the delivery back.
type lateRelease struct {
	*memory.Backend
	delay time.Duration
}

func (b lateRelease) Release(_ context.Context, d *queue.Delivery) error {
	time.Sleep(b.delay)
	return b.Backend.Release(context.Background(), d)
}

// TestStopWaitsForAGiveBackRunningPastItsGrace: a handler that returns
// at once when Stop, whose ctx ended, cancels it has its delivery given
// back; when that give-back runs past Stop's grace for cancelled
// handlers (here a Release that takes one and a half graces), Stop waits
// for it within the spare graces it keeps for give-backs (two), as it
// does for its own, and returns nil once the pool ended. It returned at
// the grace's end, naming "1 workers settling their deliveries", with
// the give-back still running.
func TestStopWaitsForAGiveBackRunningPastItsGrace(t *testing.T) {
	t.Parallel()
	const grace = 400 * time.Millisecond
	be := lateRelease{Backend: newMemory(t), delay: 3 * grace / 2}
	obs := &outcomes{}
	started := make(chan struct{})
	cfg := fast
	cfg.Concurrency = 1
	cfg.Lease = 30 * time.Second
	cfg.DrainTimeout = time.Minute // Stop's ctx ends first
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Observer: obs,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		})})})
	require.NoError(t, err)
	worker.SetStopGrace(p, grace)
	require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "t1", Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(context.Background()))
	within(t, started, "the handler to start")

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Stop's ctx has ended: the handler is cancelled at once
	require.NoError(t, p.Stop(ctx), "the pool ended within Stop's graces")

	require.Equal(t, int64(1), p.Stats().Returned)
	outs, _ := obs.snapshot()
	require.Equal(t, []task.Outcome{task.Returned}, outs)
}
