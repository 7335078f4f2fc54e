package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// redoer is a completing source that emits, once, a task whose first copy
// finished before it started (a source restarted after its process died
// between the ack and the completion); its Complete misbehaves as
// complete says. It records what its one Emit returned.
type redoer struct {
	complete func(ctx context.Context) error
	emitted  chan error
	calls    atomic.Int64
}

func (r *redoer) Name() string { return "redoer" }

func (r *redoer) Run(ctx context.Context, emit source.Emitter) error {
	if r.calls.Load() == 0 {
		r.emitted <- emit.Emit(ctx, &task.Task{ID: "a", Kind: "mail.order"})
	}
	<-ctx.Done()
	return nil
}

func (r *redoer) Complete(ctx context.Context, _ *task.Task, _ task.Outcome, _ string) error {
	r.calls.Add(1)
	return r.complete(ctx)
}

// TestEmitterCompletionUsesThePoolsGuard: the completion the emitter makes
// for a duplicate of a finished task goes through the pool of the task's
// queue like the completions the pool makes itself: bounded by its task
// timeout, a panic recovered, a failure counted (Stats.CompletionFailed)
// and logged, and Emit not failed by it (the source's task is enqueued,
// or known finished; telling it is the source's own affair). Before, a
// completer that waited for its context held the source's Emit as long as
// the source ran, and one that panicked crashed the source's Run, which
// emitted the task again after its restart: a crash loop.
func TestEmitterCompletionUsesThePoolsGuard(t *testing.T) {
	t.Parallel()
	cases := map[string]func(ctx context.Context) error{
		"hangs": func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		},
		"panics": func(context.Context) error { panic("completer bug") },
	}
	for name, complete := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			be := memory.New(memory.Options{DedupWindow: time.Minute})
			t.Cleanup(func() { _ = be.Close(context.Background()) })
			require.NoError(t, be.Enqueue(ctx, &task.Task{ID: "a", Kind: "mail.order", Queue: "orders"}))
			ds, err := be.Lease(ctx, "orders", 1, time.Minute)
			require.NoError(t, err)
			require.NoError(t, be.Ack(ctx, ds[0]))

			core, logs := observer.New(zap.ErrorLevel)
			src := &redoer{complete: complete, emitted: make(chan error, 1)}
			cfg := fast
			cfg.TaskTimeout = 200 * time.Millisecond
			rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": cfg}, Routes: []task.Route{orderRoute},
				Sources: []source.Source{src}, Logger: zap.New(core)})
			require.NoError(t, err)
			require.NoError(t, rt.Start(context.Background()))
			t.Cleanup(func() { require.NoError(t, rt.Stop(context.Background())) })

			select {
			case err := <-src.emitted:
				require.NoError(t, err, "the task was a duplicate of a finished one: nothing failed to enqueue")
			case <-time.After(5 * time.Second):
				t.Fatal("Emit is held by the completion past the task timeout")
			}
			require.Equal(t, int64(1), src.calls.Load())
			pool, ok := rt.Pool("orders")
			require.True(t, ok)
			require.Equal(t, int64(1), pool.Stats().CompletionFailed)
			require.Equal(t, 1, logs.FilterMessage("completion failed; the settlement stands").Len())
			st := rt.Supervisor().Stats()[0]
			require.Zero(t, st.Restarts)
			require.Zero(t, st.Errors)
		})
	}
}
