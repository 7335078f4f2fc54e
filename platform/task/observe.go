package task

import (
	"context"
	"errors"
	"time"
)

// Outcome is how a delivery of a task ended.
type Outcome string

// The outcomes of one delivery.
const (
	// Succeeded: the handler returned nil and the task was acked.
	Succeeded Outcome = "succeeded"
	// Retried: the handler failed and the task was scheduled again.
	Retried Outcome = "retried"
	// DeadLettered: the task failed for good and sits in the dead letter.
	DeadLettered Outcome = "dead_lettered"
	// Returned: the delivery was not settled: the pool stopped before the
	// handler finished (the task went back to the queue), or the backend
	// refused the settlement (the delivery stays leased until its lease
	// ends). Either way the task is delivered again.
	Returned Outcome = "returned"
)

// Final reports whether the outcome ends the task's life (success or dead
// letter), which is when a completion is due.
func (o Outcome) Final() bool { return o == Succeeded || o == DeadLettered }

// NotRun is the run time Observer.Finished gets for a delivery that was
// settled without running a handler.
const NotRun time.Duration = -1

// Observer sees tasks cross the runtime's boundaries. Telemetry implements
// it (spans, metrics, log fields); the runtime calls a no-op one when
// telemetry is off. Implementations must be safe for concurrent use and
// cheap: they sit on every task's path.
type Observer interface {
	// Enqueuing is called before tasks are handed to the backend. It may
	// set headers (trace context) and returns the context to pass to
	// Enqueued.
	Enqueuing(ctx context.Context, tasks []*Task) context.Context
	// Enqueued is called once the backend accepted (err == nil) or refused
	// the tasks.
	Enqueued(ctx context.Context, tasks []*Task, err error)
	// Starting is called when a worker begins a delivery of t; the
	// returned context is the handler's.
	Starting(ctx context.Context, t *Task) context.Context
	// Finished is called with the context Starting returned once the
	// delivery is settled: took is the handler's run time, or NotRun when
	// no handler ran (no route for the kind, a rejected task, a delivery
	// past its last attempt, a worker that crashed first); err is what it
	// returned (nil on success) and reason the dead-letter reason, if any.
	// A settlement the backend refused is added to err (outcome
	// Returned); when the handler succeeded and its ack was refused, err
	// is a *SettleError alone; when the pool's Stop cancelled the handler,
	// err wraps ErrStopped.
	Finished(ctx context.Context, t *Task, o Outcome, err error, reason string, took time.Duration)
}

// SettleError is the error Observer.Finished gets for a delivery whose
// handler succeeded but whose settlement (the ack) the backend refused,
// did not answer or panicked in: the outcome is Returned, the delivery
// comes back when its lease ends, and the handler did not fail.
type SettleError struct {
	// Err is the settlement's error.
	Err error
}

// Error returns the settlement's error text.
func (e *SettleError) Error() string { return e.Err.Error() }

// Unwrap returns the settlement's error.
func (e *SettleError) Unwrap() error { return e.Err }

// ErrStopped is wrapped by the error Observer.Finished gets for a
// delivery whose handler was cancelled because its pool stopped (outcome
// Returned, with the handler's own error): the handler was cut short, it
// did not fail, and its task goes back to the queue uncounted.
var ErrStopped = errors.New("handler cancelled: its pool stopped")

// NopObserver observes nothing.
type NopObserver struct{}

// Enqueuing returns ctx.
func (NopObserver) Enqueuing(ctx context.Context, _ []*Task) context.Context { return ctx }

// Enqueued does nothing.
func (NopObserver) Enqueued(context.Context, []*Task, error) {}

// Starting returns ctx.
func (NopObserver) Starting(ctx context.Context, _ *Task) context.Context { return ctx }

// Finished does nothing.
func (NopObserver) Finished(context.Context, *Task, Outcome, error, string, time.Duration) {}

// DeadObserver is an optional interface of an Observer that also hears of
// the tasks a queue backend dead-lettered on its own, outside any
// delivery's settlement (queue.DeadWatcher: JetStream after its maximum
// deliveries, memory after Options.MaxDeliveries expired leases). The
// runtime calls DeadLettered once for each such dead letter the backend
// reports to this process, with the backend's reason; no Starting or
// Finished goes with it (no delivery of this process ended). Telemetry
// counts it on plba.task.dead_lettered. Like the Observer's methods, it
// must be cheap and must not block.
type DeadObserver interface {
	DeadLettered(ctx context.Context, t *Task, reason string)
}
