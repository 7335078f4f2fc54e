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
type taskContext struct {
	parent   context.Context
	deadline time.Time

	mu       sync.Mutex
	done     chan struct{} // nil until Done; closed iff err != nil
	err      error
	timer    *time.Timer
	stopHook func() bool
	after    map[*afterFunc]struct{} // run once when the context ends
}

// afterFunc is one function registered with AfterFunc.
type afterFunc struct{ f func() }

var _ context.Context = (*taskContext)(nil)

func newTaskContext(parent context.Context, deadline time.Time) *taskContext {
	return &taskContext{parent: parent, deadline: deadline}
}

// Deadline returns the task's deadline.
func (c *taskContext) Deadline() (time.Time, bool) { return c.deadline, true }

// Value looks key up in the parent.
func (c *taskContext) Value(key any) any { return c.parent.Value(key) }

// Done returns a channel closed at the deadline, when the parent ends or
// when the task finished, whichever comes first.
func (c *taskContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	if c.err == nil {
		c.err = c.judge()
	}
	if c.err != nil {
		close(c.done)
		return c.done
	}
	c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.cancel(context.DeadlineExceeded) })
	c.stopHook = context.AfterFunc(c.parent, func() { c.cancel(c.parent.Err()) })
	return c.done
}

// Err returns nil while the task may run, context.DeadlineExceeded after
// its deadline, the parent's error once the parent ended, and
// context.Canceled after the task finished.
func (c *taskContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.done == nil {
		c.err = c.judge()
	}
	return c.err
}

// judge returns the error the context has at this moment, unarmed.
func (c *taskContext) judge() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
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
	if c.done != nil {
		close(c.done)
	}
	if len(c.after) > 0 {
		fs := c.after
		c.after = nil
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
	if c.after == nil {
		c.after = make(map[*afterFunc]struct{})
	}
	c.after[a] = struct{}{}
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.after[a]
		delete(c.after, a)
		return ok
	}
}

// finish ends the context once the handler returned (as the cancel func
// of context.WithTimeout does) and releases its timer and parent hook.
func (c *taskContext) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancelLocked(context.Canceled)
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stopHook != nil {
		c.stopHook()
	}
}
