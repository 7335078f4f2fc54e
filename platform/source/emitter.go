package source

import (
	"context"
	"sync/atomic"

	"github.com/plba/plba/platform/task"
)

// NewEmitter returns the Emitter the supervisor hands to src: it enqueues
// through enq and, when src implements Completer, sets each task's
// task.HeaderCompletion to src's name so the completion finds its way back.
// Back-pressure comes from enq: a bounded backend blocks Emit while the
// queue is full.
func NewEmitter(src Source, enq task.Enqueuer) Emitter {
	_, completes := src.(Completer)
	return &emitter{name: src.Name(), completes: completes, enq: enq}
}

type emitter struct {
	name      string
	completes bool
	enq       task.Enqueuer
	emitted   atomic.Int64
	obs       Observer // nil: none
	gate      gate     // closed while the supervisor has the source paused
}

// Emit waits while the source is paused (Supervisor.Pause), then stamps
// the completion header (when due) and enqueues tasks.
func (e *emitter) Emit(ctx context.Context, tasks ...*task.Task) error {
	if err := e.gate.wait(ctx); err != nil {
		return err
	}
	if e.completes {
		for _, t := range tasks {
			if t != nil {
				t.SetHeader(task.HeaderCompletion, e.name)
			}
		}
	}
	if err := e.enq.Enqueue(ctx, tasks...); err != nil {
		return err
	}
	e.emitted.Add(int64(len(tasks)))
	if e.obs != nil {
		e.obs.Emitted(ctx, e.name, len(tasks))
	}
	return nil
}
