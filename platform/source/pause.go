package source

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/plba/plba/platform/lifecycle"
)

// ErrUnknownSource is returned by the supervisor's Pause and Resume for a
// name no supervised source has.
var ErrUnknownSource = errors.New("source: unknown source")

// Pauser is an optional interface of a source that can stop fetching on
// its own while it keeps its connection (an IMAP mailbox: no polls, no
// IDLE, the session stays). The supervisor calls Pause and Resume on it
// besides holding its Emit; they must return quickly and be safe for
// concurrent use.
type Pauser interface {
	Pause()
	Resume()
}

// gate holds Emit while a source is paused.
type gate struct {
	mu     sync.Mutex
	paused bool
	open   chan struct{} // closed when resumed; nil while not paused
	cuts   map[*cut]struct{}
}

// cut is an Enqueue let through the gate and under way: the next pause
// cuts it (see emitter.Emit).
type cut struct{ cancel context.CancelCauseFunc }

// errPaused is the cause of an Enqueue cut by a pause of its source.
var errPaused = errors.New("source: paused")

// wait blocks while the gate is closed, until ctx ends.
func (g *gate) wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		ch := g.open
		g.mu.Unlock()
		if ch == nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// enter registers c, to be cut at the next pause, and reports true; it
// reports false, registering nothing, when the source was paused since
// it passed wait. leave unregisters c.
func (g *gate) enter(c *cut) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused {
		return false
	}
	if g.cuts == nil {
		g.cuts = make(map[*cut]struct{})
	}
	g.cuts[c] = struct{}{}
	return true
}

func (g *gate) leave(c *cut) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.cuts, c)
}

// set closes (paused) or opens the gate; it reports whether that changed
// anything. Closing it cuts the Enqueues under way before it returns.
func (g *gate) set(paused bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused == paused {
		return false
	}
	g.paused = paused
	if paused {
		g.open = make(chan struct{})
		for c := range g.cuts {
			c.cancel(errPaused)
		}
		clear(g.cuts)
	} else {
		close(g.open)
		g.open = nil
	}
	return true
}

func (g *gate) isPaused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused
}

// Pause stops the source called name from handing over tasks: its Emit
// blocks (so a source that polls and emits stops at its next emit,
// holding its position, and sends nothing; an Emit that was waiting for
// room in a full queue is cut and hands its batch over after Resume,
// what it had stored already left stored, the tasks whose publish the
// cut left unanswered settled at once, UnknownSettleTimeout), its component shows
// lifecycle.Paused, and a source that implements Pauser is told to stop
// fetching. A paused source keeps running (and keeps its connections);
// Resume releases the blocked Emit. Pausing a paused source does
// nothing.
func (s *Supervisor) Pause(name string) error {
	r, err := s.runOf(name)
	if err != nil {
		return err
	}
	if !r.emit.gate.set(true) {
		return nil
	}
	if p, ok := r.src.(Pauser); ok {
		p.Pause()
	}
	if st := r.comp.State(); st == lifecycle.Running {
		r.comp.Set(lifecycle.Paused, nil)
	}
	r.log.Info("source paused")
	return nil
}

// Resume undoes Pause.
func (s *Supervisor) Resume(name string) error {
	r, err := s.runOf(name)
	if err != nil {
		return err
	}
	if !r.emit.gate.set(false) {
		return nil
	}
	if p, ok := r.src.(Pauser); ok {
		p.Resume()
	}
	if st := r.comp.State(); st == lifecycle.Paused {
		r.comp.Set(lifecycle.Running, nil)
	}
	r.log.Info("source resumed")
	return nil
}

func (s *Supervisor) runOf(name string) (*run, error) {
	for _, r := range s.runs {
		if r.src.Name() == name {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownSource, name)
}

// healthy is the state of a source that works: Paused while an operator
// has it paused, else Running.
func (r *run) healthy() lifecycle.State {
	if r.emit.gate.isPaused() {
		return lifecycle.Paused
	}
	return lifecycle.Running
}
