package plbatest

import (
	"context"
	"fmt"

	"go.uber.org/fx"

	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// Source is a source the test drives: add it to the graph with Module,
// then Emit hands tasks to the runtime through the source path (the
// supervisor's emitter, the source observer), as a real source's Run
// would.
type Source struct {
	name  string
	batch chan emission
}

type emission struct {
	ctx   context.Context // Emit's: the emission ends with it
	tasks []*task.Task
	done  chan error
}

var _ source.Source = (*Source)(nil)

// NewSource returns a source called name.
func NewSource(name string) *Source {
	return &Source{name: name, batch: make(chan emission)}
}

// Name returns the source's name.
func (s *Source) Name() string { return s.name }

// Module contributes the source to the graph (group "task.sources").
func (s *Source) Module() fx.Option {
	return fx.Provide(source.AsSource(func() *Source { return s }))
}

// Run emits what Emit is given until ctx ends. Each emission ends when
// ctx or the context given to Emit ends, whichever comes first.
func (s *Source) Run(ctx context.Context, emit source.Emitter) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-s.batch:
			ectx, cancel := context.WithCancel(e.ctx) // its deadline and error
			stop := context.AfterFunc(ctx, cancel)
			e.done <- emit.Emit(ectx, e.tasks...)
			stop()
			cancel()
		}
	}
}

// Emit hands tasks to the running source and returns what the runtime's
// emitter returned: nil once it took them, its error when it refused them
// or gave up because ctx ended (a full queue, say); tasks it gave up on
// are not enqueued later. It waits for the source to run (the kit started
// it) until ctx ends.
func (s *Source) Emit(ctx context.Context, tasks ...*task.Task) error {
	e := emission{ctx: ctx, tasks: tasks, done: make(chan error, 1)}
	select {
	case s.batch <- e:
	case <-ctx.Done():
		return fmt.Errorf("plbatest: source %s is not running: %w", s.name, ctx.Err())
	}
	// Run answers once the emitter returns, which it does when ctx ends.
	return <-e.done
}
