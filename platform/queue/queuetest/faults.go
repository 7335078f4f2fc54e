package queuetest

import (
	"context"
	"sync"
	"time"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// Op names a port method Faulty can disturb.
type Op string

// The port methods Faulty can disturb.
const (
	OpEnqueue    Op = "enqueue"
	OpLease      Op = "lease"
	OpExtend     Op = "extend"
	OpAck        Op = "ack"
	OpRetry      Op = "retry"
	OpDeadLetter Op = "dead_letter"
	OpRelease    Op = "release"
)

// Fault is what Faulty does to calls of one Op.
type Fault struct {
	// Entered, when set, is called first, with the call's task (nil for
	// Lease): a test learns that the call is in progress.
	Entered func(t *task.Task)
	// Gate, when set, holds the call until it is closed, ignoring the
	// call's ctx: a backend that does not honour its context. Then the
	// rest of the fault applies.
	Gate <-chan struct{}
	// Delay is waited next; a call whose ctx ends during
	// the wait returns ctx.Err() without reaching the backend. A Delay
	// longer than the caller's ctx models a backend that does not answer.
	Delay time.Duration
	// Err is returned by the call. Unless Applied is set, the backend is
	// not called: the operation did not happen.
	Err error
	// Applied calls the backend first and returns Err only when the
	// backend succeeded: the operation took effect, but the caller hears
	// Err (a reply lost on the way back).
	Applied bool
	// Panic, when not nil, is what the call panics with instead of
	// returning (after Err's backend call when Applied is set, else
	// without calling the backend): a broken backend.
	Panic any
	// Times is how many calls the fault applies to; zero means every call
	// until Clear.
	Times int
	// Match, when set, limits the fault to the calls about a task it
	// accepts (Enqueue: any task of the batch).
	Match func(t *task.Task) bool
}

// Faulty wraps a backend and injects errors, panics and latency into its port
// methods (Enqueue, Lease, Extend, Ack, Retry, DeadLetter, Release), for
// the tests of code that uses a backend: the worker pool's settlement
// paths, a source's back-pressure. Every other method goes straight to the
// wrapped backend. Faults are injected and cleared while the backend is in
// use; Faulty is safe for concurrent use.
type Faulty struct {
	queue.Backend

	mu     sync.Mutex
	faults map[Op][]*Fault
	calls  map[Op]int
}

// NewFaulty wraps b without any fault.
func NewFaulty(b queue.Backend) *Faulty {
	return &Faulty{Backend: b, faults: map[Op][]*Fault{}, calls: map[Op]int{}}
}

// Inject adds f to the calls of op; the earliest injected fault that
// applies to a call wins.
func (f *Faulty) Inject(op Op, fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc := fault
	f.faults[op] = append(f.faults[op], &fc)
}

// Clear removes every fault of op.
func (f *Faulty) Clear(op Op) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.faults, op)
}

// Calls returns how many calls of op reached Faulty (faulted or not).
func (f *Faulty) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// take counts a call of op about tasks and returns the fault that applies
// to it, if any, using up one of its Times.
func (f *Faulty) take(op Op, tasks ...*task.Task) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	list := f.faults[op]
	for i, ft := range list {
		if ft.Match != nil && !matchAny(ft.Match, tasks) {
			continue
		}
		out := *ft
		if ft.Times > 0 {
			ft.Times--
			if ft.Times == 0 {
				f.faults[op] = append(list[:i:i], list[i+1:]...)
			}
		}
		return &out
	}
	return nil
}

func matchAny(m func(*task.Task) bool, tasks []*task.Task) bool {
	for _, t := range tasks {
		if t != nil && m(t) {
			return true
		}
	}
	return false
}

// do runs call under the fault of op, if any.
func (f *Faulty) do(ctx context.Context, op Op, call func() error, tasks ...*task.Task) error {
	ft := f.take(op, tasks...)
	if ft == nil {
		return call()
	}
	if ft.Entered != nil {
		var t *task.Task
		if len(tasks) > 0 {
			t = tasks[0]
		}
		ft.Entered(t)
	}
	if ft.Gate != nil {
		<-ft.Gate
	}
	if ft.Delay > 0 {
		t := time.NewTimer(ft.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if ft.Panic != nil {
		if ft.Applied {
			_ = call()
		}
		panic(ft.Panic)
	}
	if ft.Err == nil {
		return call()
	}
	if ft.Applied {
		if err := call(); err != nil {
			return err
		}
	}
	return ft.Err
}

func taskOf(d *queue.Delivery) *task.Task {
	if d == nil {
		return nil
	}
	return d.Task
}

// Enqueue is the wrapped backend's Enqueue under OpEnqueue's faults.
func (f *Faulty) Enqueue(ctx context.Context, tasks ...*task.Task) error {
	return f.do(ctx, OpEnqueue, func() error { return f.Backend.Enqueue(ctx, tasks...) }, tasks...)
}

// Lease is the wrapped backend's Lease under OpLease's faults (Match sees
// no task: it applies to every call).
func (f *Faulty) Lease(ctx context.Context, q string, max int, leaseFor time.Duration) ([]*queue.Delivery, error) {
	var ds []*queue.Delivery
	err := f.do(ctx, OpLease, func() error {
		var err error
		ds, err = f.Backend.Lease(ctx, q, max, leaseFor)
		return err
	})
	if err != nil && ds != nil {
		// Applied: the deliveries were leased, the caller does not know.
		return nil, err
	}
	return ds, err
}

// Extend is the wrapped backend's Extend under OpExtend's faults.
func (f *Faulty) Extend(ctx context.Context, d *queue.Delivery, leaseFor time.Duration) error {
	return f.do(ctx, OpExtend, func() error { return f.Backend.Extend(ctx, d, leaseFor) }, taskOf(d))
}

// Ack is the wrapped backend's Ack under OpAck's faults.
func (f *Faulty) Ack(ctx context.Context, d *queue.Delivery) error {
	return f.do(ctx, OpAck, func() error { return f.Backend.Ack(ctx, d) }, taskOf(d))
}

// Retry is the wrapped backend's Retry under OpRetry's faults.
func (f *Faulty) Retry(ctx context.Context, d *queue.Delivery, at time.Time) error {
	return f.do(ctx, OpRetry, func() error { return f.Backend.Retry(ctx, d, at) }, taskOf(d))
}

// DeadLetter is the wrapped backend's DeadLetter under OpDeadLetter's
// faults.
func (f *Faulty) DeadLetter(ctx context.Context, d *queue.Delivery, reason string) error {
	return f.do(ctx, OpDeadLetter, func() error { return f.Backend.DeadLetter(ctx, d, reason) }, taskOf(d))
}

// Release is the wrapped backend's Release under OpRelease's faults.
func (f *Faulty) Release(ctx context.Context, d *queue.Delivery) error {
	return f.do(ctx, OpRelease, func() error { return f.Backend.Release(ctx, d) }, taskOf(d))
}

// WatchDead registers fn with the wrapped backend when it is a
// queue.DeadWatcher (else fn is never called).
func (f *Faulty) WatchDead(fn func(queue.DeadLetter)) {
	if w, ok := f.Backend.(queue.DeadWatcher); ok {
		w.WatchDead(fn)
	}
}

// WatchFinished registers fn with the wrapped backend when it is a
// queue.FinishedWatcher (else fn is never called).
func (f *Faulty) WatchFinished(fn func(*task.Task)) {
	if w, ok := f.Backend.(queue.FinishedWatcher); ok {
		w.WatchFinished(fn)
	}
}

// Declare declares queues to the wrapped backend when it is a
// queue.Declarer (else it does nothing), so that a runtime on a Faulty
// backend sets its queues up at start as it would on the backend itself.
func (f *Faulty) Declare(ctx context.Context, queues ...string) error {
	if d, ok := f.Backend.(queue.Declarer); ok {
		return d.Declare(ctx, queues...)
	}
	return nil
}

// FindTasks looks tasks up on the wrapped backend (queue.FindTasks:
// through its queue.TaskFinder, else among its dead letters alone), so
// that a Faulty is a TaskFinder as its backend is: a task whose Enqueue
// heard an injected queue.ErrOutcomeUnknown, but was stored (Applied),
// is found as on the backend itself.
func (f *Faulty) FindTasks(ctx context.Context, queueName string, l queue.TaskLookup) (queue.TaskSearch, error) {
	return queue.FindTasks(ctx, f.Backend, queueName, l)
}

var (
	_ queue.Backend     = (*Faulty)(nil)
	_ queue.DeadWatcher = (*Faulty)(nil)
	_ queue.Declarer    = (*Faulty)(nil)
	_ queue.TaskFinder  = (*Faulty)(nil)
)
