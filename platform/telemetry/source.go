package telemetry

import (
	"context"

	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// InstrumentPoll wraps a source's poll so that each call is one "<name>
// poll" span (with the poll's log fields on its context): the tasks fn
// emits are enqueued under it, so their producer spans are its children.
// Every successful Emit counts its tasks on plba.source.emitted; a poll
// that fails counts on plba.source.errors. A nil so observes nothing.
//
//	source.Poll("inbox", time.Minute, 5*time.Second, telemetry.InstrumentPoll(so, "inbox", poll))
func InstrumentPoll(so SourceObserver, name string, fn source.PollFunc) source.PollFunc {
	if so == nil {
		so = NopSourceObserver{}
	}
	return func(ctx context.Context, emit source.Emitter) error {
		pctx, end := so.StartPoll(ctx, name)
		err := fn(pctx, countingEmitter{so: so, name: name, next: emit})
		end(err)
		return err
	}
}

// countingEmitter counts what its next Emitter accepted.
type countingEmitter struct {
	so   SourceObserver
	name string
	next source.Emitter
}

func (e countingEmitter) Emit(ctx context.Context, tasks ...*task.Task) error {
	if err := e.next.Emit(ctx, tasks...); err != nil {
		return err
	}
	e.so.Emitted(ctx, e.name, len(tasks))
	return nil
}
