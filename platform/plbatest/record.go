package plbatest

import (
	"context"
	"sync"
	"time"

	"github.com/plba/plba/platform/task"
)

// Delivery is one delivery of a task, as the worker pool ended it.
type Delivery struct {
	// Task is a copy of the task as delivered (Attempt is this delivery's).
	Task *task.Task
	// Outcome is how the delivery ended.
	Outcome task.Outcome
	// Err is what the handler returned (nil on success).
	Err error
	// Reason is the dead-letter reason (Outcome task.DeadLettered).
	Reason string
	// RetryIn is the delay before the next attempt (Outcome task.Retried).
	RetryIn time.Duration
}

// Enqueued is a task handed to the producer while the kit ran, which the
// backend accepted: stored, or dropped as a duplicate (Dropped).
type Enqueued struct {
	// Task is a copy of the task as enqueued.
	Task *task.Task
	// By is the task whose handler enqueued it; nil when the test or a
	// source did.
	By *task.Task
	// Dropped says the backend did not store the task: a task with its
	// key was live, or finished within the de-duplication window
	// (task.Held, task.Finished, whose marks Task carries). It will not
	// run.
	Dropped bool
}

// recorder is a task.Observer wrapped around the platform's: it records
// every enqueue and every finished delivery, and counts deliveries in
// progress (so that "idle" includes the observer's own bookkeeping).
type recorder struct {
	inner task.Observer

	mu         sync.Mutex
	deliveries []Delivery
	enqueued   []Enqueued
	delays     map[string]time.Duration // task id -> delay of the retry being settled
	running    int
}

func newRecorder() *recorder { return &recorder{delays: map[string]time.Duration{}} }

type parentKey struct{}

// Enqueuing passes the batch on.
func (r *recorder) Enqueuing(ctx context.Context, tasks []*task.Task) context.Context {
	return r.inner.Enqueuing(ctx, tasks)
}

// Enqueued records a batch the backend accepted, with the task being
// handled under ctx (if any) as the one that enqueued it.
func (r *recorder) Enqueued(ctx context.Context, tasks []*task.Task, err error) {
	if err == nil {
		by, _ := ctx.Value(parentKey{}).(*task.Task)
		r.mu.Lock()
		for _, t := range tasks {
			r.enqueued = append(r.enqueued, Enqueued{Task: t.Clone(), By: by, Dropped: task.Dropped(t)})
		}
		r.mu.Unlock()
	}
	r.inner.Enqueued(ctx, tasks, err)
}

// Starting counts the delivery and marks ctx with the task, for the
// handler's enqueues.
func (r *recorder) Starting(ctx context.Context, t *task.Task) context.Context {
	r.mu.Lock()
	r.running++
	r.mu.Unlock()
	return context.WithValue(r.inner.Starting(ctx, t), parentKey{}, t.Clone())
}

// Finished records the delivery.
func (r *recorder) Finished(ctx context.Context, t *task.Task, o task.Outcome, err error, reason string, took time.Duration) {
	r.inner.Finished(ctx, t, o, err, reason, took)
	r.mu.Lock()
	d := Delivery{Task: t.Clone(), Outcome: o, Err: err, Reason: reason}
	if o == task.Retried {
		d.RetryIn = r.delays[t.ID]
	}
	delete(r.delays, t.ID)
	r.deliveries = append(r.deliveries, d)
	r.running--
	r.mu.Unlock()
}

// DeadLettered passes a dead letter the backend made on its own on to the
// platform's observer (task.DeadObserver), which counts it.
func (r *recorder) DeadLettered(ctx context.Context, t *task.Task, reason string) {
	if d, ok := r.inner.(task.DeadObserver); ok {
		d.DeadLettered(ctx, t, reason)
	}
}

// retryDelay notes the delay of the retry being settled for t.
func (r *recorder) retryDelay(t *task.Task, d time.Duration) {
	r.mu.Lock()
	r.delays[t.ID] = d
	r.mu.Unlock()
}

// busy reports how many deliveries are between Starting and Finished.
func (r *recorder) busy() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

// snapshot copies the records.
func (r *recorder) snapshot() ([]Delivery, []Enqueued) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.deliveries...), append([]Enqueued(nil), r.enqueued...)
}
