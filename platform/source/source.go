package source

import (
	"context"

	"go.uber.org/fx"

	"github.com/plba/plba/platform/task"
)

// Source produces tasks. Run blocks until ctx ends (then it returns nil or
// ctx.Err()) or the source fails (then the supervisor restarts it with
// back-off). Name must be stable across restarts and across host replicas:
// completions are routed back to a source by name.
type Source interface {
	Name() string
	Run(ctx context.Context, emit Emitter) error
}

// Emitter hands tasks to the runtime. Emit blocks while the target queue is
// full, so back-pressure slows the source; it returns ctx.Err() when ctx
// ends first.
type Emitter interface {
	Emit(ctx context.Context, tasks ...*task.Task) error
}

// Completer is implemented by sources that want to know when a task they
// emitted is finally done: succeeded (acked) or dead-lettered. The runtime
// calls Complete after the queue backend confirmed the settlement (the ack
// or the dead letter), with the outcome that happened and, for a dead
// letter, its reason, in whichever host process handled the task (possibly
// another replica, possibly after a restart): it finds the source by the
// task's task.HeaderCompletion header. Complete gets a bounded context
// (the pool's task timeout) and should return quickly: queue the work
// (flag, move) and apply it in the source's own time, retrying there. An
// error is counted and logged; the runtime does not retry it and never
// undoes the settlement. A process that dies after the settlement and
// before the source applied the completion leaves it untold: the source
// emits the task again after its restart (the handler is idempotent) and
// the completion comes then. Complete must therefore be idempotent.
type Completer interface {
	Complete(ctx context.Context, t *task.Task, o task.Outcome, reason string) error
}

// SourcesGroup is the fx value group sources are collected in.
const SourcesGroup = "task.sources"

// AsSource annotates a constructor returning a concrete source so that its
// result joins the "task.sources" group as a Source:
//
//	fx.Provide(source.AsSource(NewMailboxSource))
func AsSource(ctor any) any {
	return fx.Annotate(ctor, fx.As(new(Source)), fx.ResultTags(`group:"`+SourcesGroup+`"`))
}

// AsSources annotates a constructor returning []Source so that each of
// them joins the "task.sources" group: for a module whose sources depend
// on its configuration (none when a feature is off, or one per entry):
//
//	fx.Provide(source.AsSources(func(cfg Config) ([]source.Source, error) { ... }))
func AsSources(ctor any) any {
	return fx.Annotate(ctor, fx.ResultTags(`group:"`+SourcesGroup+`,flatten"`))
}
