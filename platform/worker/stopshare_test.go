package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// TestStopReturnsByItsDeadline: a handler that ignores its cancellation
// does not hold Stop past its ctx's deadline. Stop gives the handler's
// delivery back, says so in its error, and returns before the deadline,
// not a grace after it: fx gives up on a stop hook at the deadline and
// runs none of the hooks after it (the queue backend's close). Stop used
// to return up to three stop graces (150 ms) after the deadline.
func TestStopReturnsByItsDeadline(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	stuck := make(chan struct{})
	defer close(stuck)
	started := make(chan struct{}, 1)
	cfg := fast
	cfg.Concurrency, cfg.BatchSize, cfg.DrainTimeout = 1, 1, 50*time.Millisecond
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			started <- struct{}{}
			<-stuck // ignores ctx
			return nil
		})})})
	require.NoError(t, err)
	require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "deaf", Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(context.Background()))
	within(t, started, "the handler")

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()
	err = p.Stop(ctx)
	returned := time.Now()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "1 handlers that ignore cancellation (tasks deaf; Stop gives their deliveries back)")
	require.True(t, returned.Before(deadline), "Stop returned %v after its deadline", returned.Sub(deadline))
	require.Equal(t, int64(1), p.Stats().Returned, "the handler's delivery was given back")
	st, err := be.Stats(context.Background(), "default")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Ready, "the task is queued again")
}

// closeRecorder is a memory backend that records how much of its stop
// context was left when Close was called (negative: never called).
type closeRecorder struct {
	*memory.Backend
	left chan time.Duration
}

func (c *closeRecorder) Close(ctx context.Context) error {
	left := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok && ctx.Err() == nil {
		left = time.Until(dl)
	}
	c.left <- left
	return c.Backend.Close(ctx)
}

// TestBackendClosesAfterAHandlerThatIgnoresCancellation: in an fx app, a
// handler that ignores its cancellation does not take the whole stop
// timeout from the queue backend, which closes after the pools (JetStream
// gives its prefetch buffer back then, uncounted, and shuts its embedded
// server down): the pools leave it a share of the time. The pools used to
// run into the deadline, and fx then skipped the backend's close.
func TestBackendClosesAfterAHandlerThatIgnoresCancellation(t *testing.T) {
	t.Parallel()
	rec := &closeRecorder{Backend: memory.New(memory.Options{}), left: make(chan time.Duration, 1)}
	stuck := make(chan struct{})
	defer close(stuck)
	started := make(chan struct{}, 1)
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(lifecycle.NewRegistry(nil, nil)),
		fx.Provide(func(lc fx.Lifecycle) queue.Backend {
			lc.Append(fx.StopHook(rec.Close))
			return rec
		}),
		fx.Supply(worker.Config{"default": {Concurrency: 1, BatchSize: 1, DrainTimeout: 100 * time.Millisecond}}),
		worker.SupplyRoute(task.Route{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			started <- struct{}{}
			<-stuck // ignores ctx
			return nil
		})}),
		worker.Module,
		fx.StopTimeout(2*time.Second),
	)
	app.RequireStart()
	require.NoError(t, rec.Enqueue(context.Background(), &task.Task{ID: "deaf", Kind: "k", Queue: "default"}))
	within(t, started, "the handler")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := app.Stop(ctx)
	require.ErrorContains(t, err, "handlers that ignore cancellation")
	select {
	case left := <-rec.left:
		require.GreaterOrEqual(t, left, 250*time.Millisecond, "the backend's close had too little time left")
	default:
		t.Fatal("the backend was never closed")
	}
	st, err := rec.Stats(context.Background(), "default")
	if err == nil { // closed: nothing to read
		require.Equal(t, int64(1), st.Ready)
	}
}

// deafSource is a source whose Run ignores its cancellation until
// release closes.
type deafSource struct{ release chan struct{} }

func (deafSource) Name() string { return "deaf" }
func (s deafSource) Run(context.Context, source.Emitter) error {
	<-s.release
	return nil
}

// TestPoolsDrainAfterASourceThatIgnoresCancellation: in an fx app, a
// source that ignores its cancellation does not take the whole stop
// timeout from the pools, which stop after the sources: the running
// handler is cancelled after the drain timeout and its task given back,
// and the backend is closed. The sources' stop used to run into the
// deadline, and fx then ran neither the pools' stop (the handler was
// never cancelled, its task never given back) nor the backend's close.
func TestPoolsDrainAfterASourceThatIgnoresCancellation(t *testing.T) {
	t.Parallel()
	rec := &closeRecorder{Backend: memory.New(memory.Options{}), left: make(chan time.Duration, 1)}
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 1)
	cancelled := make(chan struct{})
	var rt *worker.Runtime
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(lifecycle.NewRegistry(nil, nil)),
		fx.Provide(func(lc fx.Lifecycle) queue.Backend {
			lc.Append(fx.StopHook(rec.Close))
			return rec
		}),
		fx.Supply(worker.Config{"default": {Concurrency: 1, BatchSize: 1, DrainTimeout: 100 * time.Millisecond}}),
		fx.Provide(source.AsSource(func() deafSource { return deafSource{release: release} })),
		worker.SupplyRoute(task.Route{Kind: "k", Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
			started <- struct{}{}
			<-ctx.Done()
			close(cancelled)
			return ctx.Err()
		})}),
		worker.Module,
		fx.Populate(&rt),
		fx.StopTimeout(2*time.Second),
	)
	app.RequireStart()
	require.NoError(t, rec.Enqueue(context.Background(), &task.Task{ID: "long", Kind: "k", Queue: "default"}))
	within(t, started, "the handler")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := app.Stop(ctx)
	require.ErrorContains(t, err, "sources still running: deaf")
	within(t, cancelled, "the handler's cancellation")
	pool, ok := rt.Pool("default")
	require.True(t, ok)
	require.Equal(t, int64(1), pool.Stats().Returned, "the task was given back")
	select {
	case left := <-rec.left:
		require.GreaterOrEqual(t, left, 250*time.Millisecond, "the backend's close had too little time left")
	default:
		t.Fatal("the backend was never closed")
	}
}
