package task

import (
	"context"
	"time"
)

// Route binds a task kind to the queue it lives on and the handler that
// processes it. Applications contribute routes to the fx group "task.routes"
// with worker.AsRoute or worker.SupplyRoute (this package is the core data
// type and knows nothing of fx); two routes for one kind fail the host at
// start-up.
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

// Enqueuer puts tasks on their queues. The platform provides one (the
// producer) that fills defaults, resolves each task's queue from its kind's
// route, injects trace context and hands the batch to the queue backend.
// Handlers use it to fan work out.
type Enqueuer interface {
	Enqueue(ctx context.Context, tasks ...*Task) error
}
