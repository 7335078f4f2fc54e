package worker_test

import (
	"context"
	"fmt"

	"go.uber.org/fx"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// Middleware for every route, contributed through the "task.middleware"
// group and placed by its Order (lower runs first), outside each route's
// own middleware.
func ExampleSupplyMiddleware() {
	say := func(what string) task.Middleware {
		return func(next task.Handler) task.Handler {
			return task.HandlerFunc(func(ctx context.Context, t *task.Task) error {
				fmt.Println(what, t.Kind)
				return next.Handle(ctx, t)
			})
		}
	}
	done := make(chan struct{})
	var enq task.Enqueuer
	app := fx.New(fx.NopLogger,
		fx.Supply(lifecycle.NewRegistry(nil, nil)),
		fx.Provide(func(lc fx.Lifecycle) queue.Backend {
			b := memory.New(memory.Options{})
			lc.Append(fx.StopHook(b.Close))
			return b
		}),
		worker.SupplyMiddleware("audit", 20, say("audit")),
		worker.SupplyMiddleware("tenant", 10, say("tenant")),
		worker.SupplyRoute(task.Route{Kind: "invoice.send", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			fmt.Println("send")
			close(done)
			return nil
		})}),
		worker.Module,
		fx.Populate(&enq),
	)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	if err := enq.Enqueue(ctx, &task.Task{Kind: "invoice.send"}); err != nil {
		panic(err)
	}
	<-done
	_ = app.Stop(ctx)
	// Output:
	// tenant invoice.send
	// audit invoice.send
	// send
}
