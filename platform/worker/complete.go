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

// complete reports the final outcome o of t to its source, if it asked.
func (p *Pool) complete(ctx context.Context, t *task.Task, o task.Outcome, reason string) {
	if t.Header(task.HeaderCompletion) == "" {
		return
	}
	if err := p.completeGuarded(ctx, t, o, reason); err != nil {
		p.n.completionFailed.Add(1)
		p.setLastError(err)
		msg, _ := errorText(err)
		p.log.Error("completion failed; the settlement stands", zap.String("task", t.ID), zap.String("kind", t.Kind),
			zap.String("outcome", string(o)), zap.String("error", msg))
	}
}

// completeGuarded calls the source's Complete with a context that keeps
// ctx's values, is bounded by the task timeout and, once Stop began, by
// Stop's ctx; a panic in it is a failed completion.
func (p *Pool) completeGuarded(ctx context.Context, t *task.Task, o task.Outcome, reason string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("completion panicked", zap.String("task", t.ID), zap.String("kind", t.Kind),
				zap.Any("panic", r), zap.Stack("stack"))
			err = fmt.Errorf("completion panicked: %v", r)
		}
	}()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.TaskTimeout)
	defer cancel()
	defer context.AfterFunc(p.settleParent(), cancel)()
	return p.comps.Complete(cctx, t, o, reason)
}
