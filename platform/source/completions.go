package source

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/plba/plba/platform/task"
)

// Errors of completion dispatch.
var (
	// ErrUnknownCompleter is returned by Completions.Complete when a task's
	// task.HeaderCompletion names no completer registered in this process.
	ErrUnknownCompleter = errors.New("source: no completer registered under that name")
	// ErrDuplicateSource is returned when two sources (or completers) share
	// a name: completions could not be routed.
	ErrDuplicateSource = errors.New("source: duplicate source name")
	// ErrInvalidSource is returned for a nil source or one without a name.
	ErrInvalidSource = errors.New("source: invalid source")
)

// Completions routes the completion of a task back to the Completer named
// by its task.HeaderCompletion header. Worker pools call Complete once the
// backend confirmed a task's final settlement (acked, or dead-lettered by
// the pool or by the backend itself). The zero value is an empty registry ready for use; it is safe for
// concurrent use.
type Completions struct {
	mu sync.RWMutex
	m  map[string]Completer
}

// NewCompletions returns a registry holding every source among sources that
// implements Completer, under its name. Duplicate names are an error.
func NewCompletions(sources ...Source) (*Completions, error) {
	c := &Completions{}
	for _, s := range sources {
		if s == nil {
			return nil, fmt.Errorf("%w: nil source", ErrInvalidSource)
		}
		if cp, ok := s.(Completer); ok {
			if err := c.Add(s.Name(), cp); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// Add registers cp under name. A second registration of name is an error
// wrapping ErrDuplicateSource.
func (c *Completions) Add(name string, cp Completer) error {
	if name == "" || cp == nil {
		return fmt.Errorf("%w: completer needs a name and a value", ErrInvalidSource)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateSource, name)
	}
	if c.m == nil {
		c.m = make(map[string]Completer)
	}
	c.m[name] = cp
	return nil
}

// Names returns the registered names, sorted.
func (c *Completions) Names() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, 0, len(c.m))
	for n := range c.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Wants reports whether t asked for a completion.
func Wants(t *task.Task) bool { return t.Header(task.HeaderCompletion) != "" }

// Complete reports outcome o (with the dead-letter reason, if any) of t to
// the completer its task.HeaderCompletion header names. A task without the
// header needs no completion and Complete returns nil. An unknown name
// returns an error wrapping ErrUnknownCompleter. A completer's panic is
// recovered and returned as an error (a *task.PanicError); so is its
// runtime.Goexit (testing's FailNow, say), as an error wrapping
// task.ErrGoexit, which leaves the caller's goroutine running: the
// completer runs on a goroutine of its own, which Complete waits for. A
// nil *Completions knows no completer.
func (c *Completions) Complete(ctx context.Context, t *task.Task, o task.Outcome, reason string) error {
	name := t.Header(task.HeaderCompletion)
	if name == "" {
		return nil
	}
	var cp Completer
	if c != nil {
		c.mu.RLock()
		cp = c.m[name]
		c.mu.RUnlock()
	}
	if cp == nil {
		return fmt.Errorf("source: complete task %s: %w: %q", t.ID, ErrUnknownCompleter, name)
	}
	if err := call(func() error { return cp.Complete(ctx, t, o, reason) }); err != nil {
		return fmt.Errorf("source %q: complete task %s (%s): %w", name, t.ID, o, err)
	}
	return nil
}

// call runs f on a goroutine of its own and returns its error once it
// ended: a panic as a *task.PanicError, and runtime.Goexit, which nothing
// can recover, as task.ErrGoexit. As the worker pools do for a worker's
// goroutine, it tells Goexit from a return by a flag set after f
// returned: the deferred function finds it unset, with nothing to
// recover.
func call(f func() error) (err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		returned := false
		defer func() {
			if r := recover(); r != nil {
				err = &task.PanicError{Value: r, Stack: debug.Stack()}
			} else if !returned {
				err = task.ErrGoexit
			}
		}()
		err = f()
		returned = true
	}()
	<-done
	return err
}

// CompleteWithin is Complete under the guard of every completion the
// runtime makes: the completer's context keeps ctx's values but not its
// cancellation (the outcome happened; whoever tells it may be stopping
// meanwhile), and ends after timeout, or earlier when stop ends (a nil
// stop never does). A panic or runtime.Goexit is an error, as with
// Complete. Worker pools call it with their task timeout and their Stop's
// context; an Emitter for a task the backend dropped as a duplicate of a
// finished one.
func (c *Completions) CompleteWithin(ctx, stop context.Context, timeout time.Duration, t *task.Task, o task.Outcome, reason string) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if stop != nil {
		defer context.AfterFunc(stop, cancel)()
	}
	return c.Complete(cctx, t, o, reason)
}
