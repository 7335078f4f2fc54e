package worker_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// trace records the order in which middleware and handlers ran.
type trace struct {
	mu    sync.Mutex
	steps []string
	done  chan struct{}
}

func (tr *trace) add(s string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.steps = append(tr.steps, s)
}

func (tr *trace) mw(name string) task.Middleware {
	return func(next task.Handler) task.Handler {
		return task.HandlerFunc(func(ctx context.Context, t *task.Task) error {
			tr.add(name + ">" + t.Kind)
			return next.Handle(ctx, t)
		})
	}
}

// Middleware from the group wraps every route, in explicit order (not
// the order of registration, which fx does not keep), outside each
// route's own middleware.
func TestMiddlewareWrapsEveryRouteInOrder(t *testing.T) {
	t.Parallel()
	tr := &trace{done: make(chan struct{}, 2)}
	handler := func(name string) task.Handler {
		return task.HandlerFunc(func(_ context.Context, t *task.Task) error {
			tr.add("handler>" + t.Kind)
			tr.done <- struct{}{}
			return nil
		})
	}
	var enq task.Enqueuer
	app := fxtest.New(t,
		fx.Supply(lifecycle.NewRegistry(nil, nil)),
		memoryBackend(memory.Options{}),
		// Registered in reverse of their order, the same name order too.
		worker.SupplyMiddleware("c-inner", 20, tr.mw("c-inner")),
		worker.SupplyMiddleware("a-outer", -5, tr.mw("a-outer")),
		fx.Provide(worker.AsMiddleware(func() worker.Middleware {
			return worker.Middleware{Name: "b-middle", Order: 10, Wrap: tr.mw("b-middle")}
		})),
		worker.SupplyRoute(task.Route{Kind: "one", Handler: task.Chain(handler("one"), tr.mw("route-own"))}),
		worker.SupplyRoute(task.Route{Kind: "two", Queue: "other", Handler: handler("two")}),
		worker.Module,
		fx.Populate(&enq),
	)
	app.RequireStart()
	defer app.RequireStop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, enq.Enqueue(ctx, &task.Task{Kind: "one"}))
	select {
	case <-tr.done:
	case <-ctx.Done():
		t.Fatal("task one not handled")
	}
	require.NoError(t, enq.Enqueue(ctx, &task.Task{Kind: "two"}))
	select {
	case <-tr.done:
	case <-ctx.Done():
		t.Fatal("task two not handled")
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	require.Equal(t, []string{
		"a-outer>one", "b-middle>one", "c-inner>one", "route-own>one", "handler>one",
		"a-outer>two", "b-middle>two", "c-inner>two", "handler>two",
	}, slices.Clone(tr.steps))
}

// A middleware without a name or function, or a name given twice, fails
// the start naming it.
func TestMiddlewareInvalid(t *testing.T) {
	t.Parallel()
	nop := func(h task.Handler) task.Handler { return h }
	for _, tc := range []struct {
		name string
		opts []fx.Option
		want string
	}{
		{"twice", []fx.Option{worker.SupplyMiddleware("audit", 1, nop), worker.SupplyMiddleware("between", 2, nop), worker.SupplyMiddleware("audit", 3, nop)}, `"audit" is given twice`},
		{"no name", []fx.Option{worker.SupplyMiddleware("", 1, nop)}, "has no name"},
		{"no func", []fx.Option{worker.SupplyMiddleware("audit", 1, nil)}, `"audit" has no function`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := fx.New(fx.NopLogger, fx.Supply(lifecycle.NewRegistry(nil, nil)), memoryBackend(memory.Options{}),
				fx.Options(tc.opts...), worker.Module)
			require.ErrorIs(t, app.Err(), worker.ErrInvalidMiddleware)
			require.ErrorContains(t, app.Err(), tc.want)
		})
	}
}
