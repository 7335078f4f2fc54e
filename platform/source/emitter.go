package source

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/plba/plba/platform/task"
)

// NewEmitter returns the Emitter the supervisor hands to src: it enqueues
// through enq and, when src implements Completer, sets each task's
// task.HeaderCompletion to src's name so the completion finds its way back.
// Back-pressure comes from enq: a bounded backend blocks Emit while the
// queue is full.
//
// A task the backend drops because a task with its key already finished
// (task.Finished) is completed at once with that outcome: the source that
// emits it again (after a restart, say) may never have heard it, and no
// other completion will come.
func NewEmitter(src Source, enq task.Enqueuer) Emitter {
	cp, _ := src.(Completer)
	return &emitter{name: src.Name(), completes: cp != nil, cp: cp, enq: enq}
}

type emitter struct {
	name      string
	completes bool
	cp        Completer // nil unless completes
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
	if !e.completes {
		return nil
	}
	var errs []error
	for _, t := range tasks {
		if o, reason, ok := task.Finished(t); ok {
			if err := e.cp.Complete(ctx, t, o, reason); err != nil {
				errs = append(errs, fmt.Errorf("source %s: complete task %s, a duplicate of one that %s: %w", e.name, t.ID, o, err))
			}
		}
	}
	return errors.Join(errs...)
}
