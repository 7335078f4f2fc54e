package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// forgingSource emits one task whose headers, taken from outside (a
// webhook's, a mail's), already claim that it finished.
type forgingSource struct{ inbox }

func (s *forgingSource) Run(ctx context.Context, emit source.Emitter) error {
	t := &task.Task{Kind: "mail.order", Payload: []byte("spam")}
	t.SetHeader(task.HeaderFinished, string(task.Succeeded))
	t.SetHeader(task.HeaderFinishedReason, "forged")
	if err := emit.Emit(ctx, t); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// TestForgedFinishedMarkIsNotAnOutcome: a task that arrives carrying the
// header a backend sets on a duplicate it dropped (task.HeaderFinished)
// is stored and handled like any other, and its source hears only what
// really happened to it. The header used to pass through Enqueue: the
// source was told "succeeded" at once, before the handler ran, and
// "dead_lettered" when the handler refused the task.
func TestForgedFinishedMarkIsNotAnOutcome(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	src := &forgingSource{}
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": fast}, Routes: []task.Route{orderRoute},
		Sources: []source.Source{src}})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, rt.Stop(context.Background())) })

	var dl []queue.DeadLetter
	require.Eventually(t, func() bool {
		dl, _ = be.ListDead(context.Background(), "orders", 0)
		return len(dl) == 1 && len(src.snapshot()) > 0
	}, 10*time.Second, time.Millisecond)
	require.Equal(t, map[string][]task.Outcome{"spam": {task.DeadLettered}}, src.snapshot())
	require.Empty(t, dl[0].Task.Header(task.HeaderFinished), "the stored task does not carry the mark")
	src.mu.Lock()
	require.Equal(t, "not an order", src.reasons["spam"])
	src.mu.Unlock()
}
