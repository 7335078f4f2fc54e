package worker_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
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

// memoryBackend provides a memory backend closed by the fx lifecycle.
func memoryBackend(o memory.Options) fx.Option {
	return fx.Provide(func(lc fx.Lifecycle) queue.Backend {
		b := memory.New(o)
		lc.Append(fx.StopHook(b.Close))
		return b
	})
}

// orderSource emits n order tasks (one per Emit, as a mailbox would) and
// records the completion of each.
type orderSource struct {
	n int

	mu        sync.Mutex
	outcomes  map[string]task.Outcome
	completes int
	done      chan struct{}
}

func newOrderSource(n int) *orderSource {
	return &orderSource{n: n, outcomes: make(map[string]task.Outcome, n), done: make(chan struct{})}
}

func (s *orderSource) Name() string { return "orders" }

func (s *orderSource) Run(ctx context.Context, emit source.Emitter) error {
	for i := range s.n {
		t := &task.Task{Kind: "order.store", Key: "order-" + strconv.Itoa(i), Payload: []byte(strconv.Itoa(i))}
		if err := emit.Emit(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

func (s *orderSource) Complete(_ context.Context, t *task.Task, o task.Outcome, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes[string(t.Payload)] = o
	s.completes++
	if s.completes == s.n {
		close(s.done)
	}
	return nil
}

// TestEndToEndTenThousandTasks runs an fx app: a source emits 10,000
// tasks into a small memory queue (so back-pressure is exercised), a pool
// of 8 handles them; every task is handled exactly once and the source's
// completion callback sees every one of them succeed.
func TestEndToEndTenThousandTasks(t *testing.T) {
	t.Parallel()
	const n = 10_000
	src := newOrderSource(n)
	handled := make([]atomic.Int32, n)
	var rt *worker.Runtime
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(lifecycle.NewRegistry(nil, nil)),
		memoryBackend(memory.Options{Capacity: 500}),
		fx.Supply(worker.Config{"orders": {Concurrency: 8}}),
		worker.SupplyRoute(task.Route{Kind: "order.store", Queue: "orders", Name: "orders module",
			Handler: task.HandlerFunc(func(_ context.Context, t *task.Task) error {
				i, err := strconv.Atoi(string(t.Payload))
				if err != nil {
					return task.Permanent(err)
				}
				handled[i].Add(1)
				return nil
			})}),
		fx.Provide(source.AsSource(func() *orderSource { return src })),
		worker.Module,
		fx.Populate(&rt),
	)
	app.RequireStart()
	select {
	case <-src.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("only %d of %d completions", src.completes, n)
	}
	app.RequireStop()

	for i := range handled {
		require.Equal(t, int32(1), handled[i].Load(), "task %d handled once", i)
	}
	src.mu.Lock()
	require.Len(t, src.outcomes, n)
	for k, o := range src.outcomes {
		require.Equal(t, task.Succeeded, o, "task %s", k)
	}
	src.mu.Unlock()
	p, ok := rt.Pool("orders")
	require.True(t, ok)
	st := p.Stats()
	require.Equal(t, int64(n), st.Succeeded)
	require.Zero(t, st.Failed)
	require.Zero(t, st.InFlight)
	require.Equal(t, int64(n), rt.Supervisor().Stats()[0].Emitted)
}

// TestModuleDuplicateRouteFailsStartup checks that two routes for one kind
// fail the app before anything starts, naming both.
func TestModuleDuplicateRouteFailsStartup(t *testing.T) {
	t.Parallel()
	h := task.HandlerFunc(func(context.Context, *task.Task) error { return nil })
	app := fx.New(
		fx.NopLogger,
		fx.Supply(lifecycle.NewRegistry(nil, nil)),
		memoryBackend(memory.Options{}),
		worker.SupplyRoute(task.Route{Kind: "invoice.send", Handler: h, Name: "billing"}),
		worker.SupplyRoute(task.Route{Kind: "invoice.send", Handler: h, Name: "mailing"}),
		worker.Module,
	)
	err := app.Err()
	require.ErrorIs(t, err, worker.ErrDuplicateRoute)
	require.ErrorContains(t, err, `"billing"`)
	require.ErrorContains(t, err, `"mailing"`)
}

// TestModuleStatusInRegistry checks that pools and sources are lifecycle
// components whose details are their counters (what /admin/v1/status
// shows).
func TestModuleStatusInRegistry(t *testing.T) {
	t.Parallel()
	reg := lifecycle.NewRegistry(nil, nil)
	src := newOrderSource(20)
	var fails atomic.Int64
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(reg),
		memoryBackend(memory.Options{}),
		fx.Supply(worker.Config{"orders": {Concurrency: 2, MaxAttempts: 1}}),
		worker.SupplyRoute(task.Route{Kind: "order.store", Queue: "orders", Handler: task.HandlerFunc(func(_ context.Context, t *task.Task) error {
			if string(t.Payload) == "7" {
				fails.Add(1)
				return task.Permanentf("order 7 is malformed")
			}
			return nil
		})}),
		fx.Provide(source.AsSource(func() *orderSource { return src })),
		worker.Module,
	)
	app.RequireStart()
	<-src.done

	comp, ok := reg.Get(worker.ComponentPrefix + "orders")
	require.True(t, ok)
	require.Equal(t, lifecycle.Running, comp.State())
	require.Eventually(t, func() bool {
		return comp.Status().Details.(worker.Stats).Processed == 20
	}, 5*time.Second, time.Millisecond)
	st := comp.Status().Details.(worker.Stats)
	require.Equal(t, int64(19), st.Succeeded)
	require.Equal(t, int64(1), st.Dead)
	require.Equal(t, "permanent: order 7 is malformed", st.LastError)
	require.Equal(t, 2, st.Workers)
	js, err := json.Marshal(st)
	require.NoError(t, err)
	require.Contains(t, string(js), `"dead":1`)

	_, ok = reg.Get(worker.ComponentPrefix + task.DefaultQueue)
	require.True(t, ok, "the default queue always has a pool")
	sc, ok := reg.Get(source.ComponentPrefix + "orders")
	require.True(t, ok)
	// The last task can be completed before its Emit returned and counted it.
	require.Eventually(t, func() bool { return sc.Status().Details.(source.Stats).Emitted == 20 }, 5*time.Second, time.Millisecond)

	src.mu.Lock()
	require.Equal(t, task.DeadLettered, src.outcomes["7"])
	src.mu.Unlock()
	app.RequireStop()
	require.Equal(t, lifecycle.Stopped, comp.State())
	require.Equal(t, lifecycle.Stopped, sc.State())
	require.Equal(t, int64(1), fails.Load())
}

// orderWatcher is a source that records the state of the pool when it
// starts and when its context ends.
type orderWatcher struct {
	reg             *lifecycle.Registry
	atStart, atStop lifecycle.State
	stopped         chan struct{}
}

func (w *orderWatcher) Name() string { return "watcher" }

func (w *orderWatcher) Run(ctx context.Context, _ source.Emitter) error {
	c, _ := w.reg.Get(worker.ComponentPrefix + task.DefaultQueue)
	w.atStart = c.State()
	<-ctx.Done()
	w.atStop = c.State()
	close(w.stopped)
	return nil
}

// TestModuleStartStopOrder: pools run before sources start, and sources
// stop before pools drain.
func TestModuleStartStopOrder(t *testing.T) {
	t.Parallel()
	reg := lifecycle.NewRegistry(nil, nil)
	w := &orderWatcher{reg: reg, stopped: make(chan struct{})}
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(reg),
		memoryBackend(memory.Options{}),
		fx.Provide(source.AsSource(func() *orderWatcher { return w })),
		worker.Module,
	)
	app.RequireStart()
	app.RequireStop()
	<-w.stopped
	require.Equal(t, lifecycle.Running, w.atStart, "pool state when the source started")
	require.Equal(t, lifecycle.Running, w.atStop, "pool state when the source was stopped")
}

// TestBackPressureKeepsMemoryBounded: a source emitting as fast as it can
// into a small queue, against a slow pool, is held back by the queue: it
// is never more than the queue's capacity ahead of the handler, and it
// finishes emitting only shortly before the pool finishes handling.
func TestBackPressureKeepsMemoryBounded(t *testing.T) {
	t.Parallel()
	const (
		n        = 400
		capacity = 40
	)
	var emitted, handled, maxAhead atomic.Int64
	be := memory.New(memory.Options{Capacity: capacity})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	src := &funcSource{name: "firehose", run: func(ctx context.Context, emit source.Emitter) error {
		for range n {
			if err := emit.Emit(ctx, &task.Task{Kind: "slow"}); err != nil {
				return err
			}
			e := emitted.Add(1)
			if ahead := e - handled.Load(); ahead > maxAhead.Load() {
				maxAhead.Store(ahead)
			}
		}
		return nil
	}}
	sourceDone := make(chan int64, 1)
	src2 := &funcSource{name: "watch", run: func(ctx context.Context, _ source.Emitter) error {
		for emitted.Load() < n {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Millisecond):
			}
		}
		sourceDone <- handled.Load()
		return nil
	}}
	rt, err := worker.New(worker.Params{
		Backend: be,
		Config:  worker.Config{"default": {Concurrency: 2, BatchSize: 2}},
		Routes: []task.Route{{Kind: "slow", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			time.Sleep(time.Millisecond)
			handled.Add(1)
			return nil
		})}},
		Sources: []source.Source{src, src2},
	})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	defer func() { require.NoError(t, rt.Stop(context.Background())) }()

	var handledWhenEmitted int64
	select {
	case handledWhenEmitted = <-sourceDone:
	case <-time.After(time.Minute):
		t.Fatalf("source emitted only %d of %d", emitted.Load(), n)
	}
	require.Eventually(t, func() bool { return handled.Load() == n }, time.Minute, time.Millisecond)
	// Acked tasks leave the queue; leased ones (in the pool) still count
	// against its capacity, so the source can never be further ahead.
	require.LessOrEqual(t, maxAhead.Load(), int64(capacity), "emitted minus handled")
	require.GreaterOrEqual(t, handledWhenEmitted, int64(n-capacity-1), "the source was held back to the pool's pace")
	st, err := be.Stats(context.Background(), "default")
	require.NoError(t, err)
	require.Zero(t, st.Ready+st.InFlight)
}

// funcSource is a Source made of a function.
type funcSource struct {
	name string
	run  func(ctx context.Context, emit source.Emitter) error
}

func (f *funcSource) Name() string                                       { return f.name }
func (f *funcSource) Run(ctx context.Context, emit source.Emitter) error { return f.run(ctx, emit) }
