package task

import (
	"context"
	"time"

	"go.uber.org/fx"
)

// Route binds a task kind to the queue it lives on and the handler that
// processes it. Applications contribute routes to the fx group "task.routes"
// with AsRoute; two routes for one kind fail the host at start-up.
type Route struct {
	// Kind is the task kind this route handles. Required.
	Kind string
	// Queue is the queue tasks of Kind are enqueued on. Empty means "default".
	Queue string
	// Handler processes the tasks. Required.
	Handler Handler
	// MaxAttempts overrides the pool's maximum attempts for this kind.
	// Zero means the pool's value.
	MaxAttempts int
	// Timeout overrides the pool's task timeout for this kind. Zero means
	// the pool's value.
	Timeout time.Duration
	// Name describes where the route was declared, for error messages
	// (for example the module name). Optional.
	Name string
}

// DefaultQueue is the queue used by routes that name none.
const DefaultQueue = "default"

// QueueName returns r.Queue or DefaultQueue.
func (r Route) QueueName() string {
	if r.Queue == "" {
		return DefaultQueue
	}
	return r.Queue
}

// RoutesGroup is the fx value group routes are collected in.
const RoutesGroup = "task.routes"

// AsRoute annotates a constructor returning a Route so that its result joins
// the "task.routes" group:
//
//	fx.Provide(task.AsRoute(NewInvoiceRoute))
func AsRoute(ctor any) any {
	return fx.Annotate(ctor, fx.ResultTags(`group:"`+RoutesGroup+`"`))
}

// SupplyRoute contributes a ready Route value to the "task.routes" group.
func SupplyRoute(r Route) fx.Option {
	return fx.Provide(AsRoute(func() Route { return r }))
}

// Enqueuer puts tasks on their queues. The platform provides one (the
// producer) that fills defaults, resolves each task's queue from its kind's
// route, injects trace context and hands the batch to the queue backend.
// Handlers use it to fan work out.
type Enqueuer interface {
	Enqueue(ctx context.Context, tasks ...*Task) error
}
