package worker

import (
	"context"
	"sync"
	"time"
)

// taskContext is a handler's context: the pool's hard-stop context with the
// task's deadline. It behaves like context.WithTimeout(parent, timeout) but
// arms no timer until someone asks for Done: a handler that never waits on
// its context (or derives none from it) costs one allocation and no timer.
// Err judges the deadline and the parent on the spot while Done is unarmed.
//
// Contexts derived from it (WithTimeout, WithCancel, AfterFunc) cost no
// goroutine: it has the AfterFunc method through which the standard
// library's context package links a child to a parent of a foreign type
// (without it, each child would start a goroutine waiting on Done). The
// standard library's WithDeadline costs three allocations and a timer per
// task more (BENCHMARKS.md). On the peers harness (issue 15, plba-memory
// with the host's telemetry, c=8 and 64, a scratch copy with
// context.WithDeadline in the same run) that is 0.6 to 1.4 µs of CPU per
// task worked more (medians of 5 in three cells; worked/s 212 k to 323 k
// against 401 k to 456 k).
//
// It is 64 bytes (the deadline kept as an offset from the pool's epoch,
// the fields Done arms in a struct of their own, allocated by Done): on
// the peers harness every byte a delivery allocates is fresh memory, and
// its first touch costs more than the allocation (BENCHMARKS.md).
type taskContext struct {
	parent   context.Context
	epoch    *time.Time    // the pool's epoch
	deadline time.Duration // since *epoch

	mu  sync.Mutex
	err error
	arm *armed // nil until Done
}

// armed is what Done adds to a taskContext.
type armed struct {
	done     chan struct{} // closed iff the context's err != nil
	timer    *time.Timer
	stopHook func() bool
	after    map[*afterFunc]struct{} // run once when the context ends
}

// afterFunc is one function registered with AfterFunc.
type afterFunc struct{ f func() }

var _ context.Context = (*taskContext)(nil)

// newTaskContext returns the context of a task that must end by
// epoch+deadline; epoch is read-only while the context lives.
func newTaskContext(parent context.Context, epoch *time.Time, deadline time.Duration) *taskContext {
	return &taskContext{parent: parent, epoch: epoch, deadline: deadline}
}

// Deadline returns the task's deadline.
func (c *taskContext) Deadline() (time.Time, bool) { return c.epoch.Add(c.deadline), true }

// Value looks key up in the parent.
func (c *taskContext) Value(key any) any { return c.parent.Value(key) }

// Done returns a channel closed at the deadline, when the parent ends or
// when the task finished, whichever comes first.
func (c *taskContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.arm != nil {
		return c.arm.done
	}
	c.arm = &armed{done: make(chan struct{})}
	if c.err == nil {
		c.err = c.judge()
	}
	if c.err != nil {
		close(c.arm.done)
		return c.arm.done
	}
	c.arm.timer = time.AfterFunc(c.deadline-time.Since(*c.epoch), func() { c.cancel(context.DeadlineExceeded) })
	c.arm.stopHook = context.AfterFunc(c.parent, func() { c.cancel(c.parent.Err()) })
	return c.arm.done
}

// Err returns nil while the task may run, context.DeadlineExceeded after
// its deadline, the parent's error once the parent ended, and
// context.Canceled after the task finished.
func (c *taskContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.arm == nil {
		c.err = c.judge()
	}
	return c.err
}

// judge returns the error the context has at this moment, unarmed.
func (c *taskContext) judge() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if time.Since(*c.epoch) >= c.deadline {
		return context.DeadlineExceeded
	}
	return nil
}

// cancel ends the context with err unless it ended already.
func (c *taskContext) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancelLocked(err)
}

func (c *taskContext) cancelLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if c.arm == nil {
		return
	}
	close(c.arm.done)
	if len(c.arm.after) > 0 {
		fs := c.arm.after
		c.arm.after = nil
		// Outside the lock: a function may call back (a stop, Err).
		c.mu.Unlock()
		for a := range fs {
			a.f()
		}
		c.mu.Lock()
	}
}

// AfterFunc arranges for f to be called once the context ends (at once, in
// its own goroutine, when it ended already) and returns a function that
// cancels the call: it reports whether it did. The context package uses it
// to link derived contexts to this one without a goroutine each; f is
// then a child's cancel, which returns at once.
func (c *taskContext) AfterFunc(f func()) (stop func() bool) {
	_ = c.Done() // armed: the deadline and the parent now end the context
	a := &afterFunc{f: f}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if c.arm.after == nil {
		c.arm.after = make(map[*afterFunc]struct{})
	}
	c.arm.after[a] = struct{}{}
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.arm.after[a]
		delete(c.arm.after, a)
		return ok
	}
}

// finish ends the context once the handler returned (as the cancel func
// of context.WithTimeout does) and releases its timer and parent hook.
func (c *taskContext) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancelLocked(context.Canceled)
	if c.arm != nil && c.arm.timer != nil { // armed before it ended
		c.arm.timer.Stop()
		c.arm.stopHook()
	}
}
