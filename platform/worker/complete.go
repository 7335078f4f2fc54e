package worker

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/task"
)

// Telling the source: a task that carries task.HeaderCompletion gets its
// source's Complete (through source.Completions) once the backend
// confirmed its final settlement, with the outcome that really happened
// (succeeded: acked; dead-lettered, with the reason). A failed completion
// is counted (Stats.CompletionFailed, the metric
// plba.task.completion_failed) and logged; the pool neither retries it nor
// undoes the settlement: telling the source is the source's own job,
// which it retries itself. If the process dies between the settlement and
// the completion, the source never hears of the task, emits it again
// after its restart, and the idempotent handler runs once more (see
// docs/architecture.md, "Completion").

// completeFinished is the supervisor's source.CompleteFunc: a task the
// backend dropped at Enqueue as a duplicate of a finished one is told to
// its source by the pool of its queue (task.DefaultQueue's for a queue
// without a pool), as that pool tells the outcomes it settles: bounded by
// its task timeout, a panic recovered, a failure counted and logged. The
// failure is not returned to the source's Emit: its task was enqueued (or
// known finished); a source that emitted it again would only be told
// again.
func (r *Runtime) completeFinished(ctx context.Context, t *task.Task, o task.Outcome, reason string) error {
	p := r.byQueue[t.Queue]
	if p == nil {
		p = r.byQueue[task.DefaultQueue]
	}
	p.complete(ctx, t, o, reason)
	return nil
}

// complete reports the final outcome o of t to its source, if it asked.
func (p *Pool) complete(ctx context.Context, t *task.Task, o task.Outcome, reason string) {
	if t.Header(task.HeaderCompletion) == "" {
		return
	}
	stop, cancel := p.stopBounded()
	defer cancel()
	if err := p.completeGuarded(ctx, stop, t, o, reason); err != nil {
		p.n.completionFailed.Add(1)
		p.setLastError(err)
		msg, _ := errorText(err)
		p.log.Error("completion failed; the settlement stands", zap.String("task", t.ID), zap.String("kind", t.Kind),
			zap.String("outcome", string(o)), zap.String("error", msg))
	}
}

// completeGuarded calls the source's Complete with a context that keeps
// ctx's values, is bounded by the task timeout and by stop (see
// stopBounded); a panic in it is a failed completion.
func (p *Pool) completeGuarded(ctx, stop context.Context, t *task.Task, o task.Outcome, reason string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("completion panicked", zap.String("task", t.ID), zap.String("kind", t.Kind),
				zap.Any("panic", r), zap.Stack("stack"))
			err = fmt.Errorf("completion panicked: %v", r)
		}
	}()
	return p.comps.CompleteWithin(ctx, stop, p.cfg.TaskTimeout, t, o, reason)
}
