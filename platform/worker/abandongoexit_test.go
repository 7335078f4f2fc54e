package worker_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// TestAbandonedHandlerThatGoexitsIsFinished: a handler that ignores its
// cancellation, whose delivery Stop gave back itself, and that then ends
// its worker with runtime.Goexit is still reported to the observer that
// saw it start, once, with what Stop's give-back did (here the dead
// letter the backend made of it, as its source was told), not as a
// failure. The observer used to hear nothing: the crashed worker found
// the delivery claimed and left it.
func TestAbandonedHandlerThatGoexitsIsFinished(t *testing.T) {
	t.Parallel()
	be := deadOnRelease{newMemory(t)}
	src := &inbox{}
	comps, err := source.NewCompletions(src)
	require.NoError(t, err)
	obs := &finishedLog{}
	started, stuck := make(chan struct{}), make(chan struct{})
	cfg := fast
	cfg.Concurrency, cfg.DrainTimeout = 1, 20*time.Millisecond
	p, err := worker.NewPool(worker.PoolParams{Queue: "orders", Config: cfg, Backend: be, Completions: comps, Observer: obs,
		Router: mustRouter(t, task.Route{Kind: "mail.order", Queue: "orders", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			close(started)
			<-stuck // ignores its cancellation
			runtime.Goexit()
			return nil
		})})})
	require.NoError(t, err)
	tk := &task.Task{Kind: "mail.order", Queue: "orders", Payload: []byte("o1")}
	tk.SetHeader(task.HeaderCompletion, "inbox")
	require.NoError(t, be.Enqueue(context.Background(), tk))
	require.NoError(t, p.Start(context.Background()))
	within(t, started, "the handler")

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	require.ErrorContains(t, p.Stop(ctx), "1 handlers that ignore cancellation")
	close(stuck)
	require.NoError(t, p.Stop(context.Background()))
	outs, reasons := obs.snapshot()
	require.Equal(t, []task.Outcome{task.DeadLettered}, outs, "the observer hears what the source heard")
	require.Equal(t, []string{deadOnReleaseReason}, reasons)
	require.Equal(t, map[string][]task.Outcome{"o1": {task.DeadLettered}}, src.snapshot())
	st := p.Stats()
	require.Equal(t, int64(1), st.Dead)
	require.Zero(t, st.Failed, "stopped, not failed")
	require.Equal(t, int64(1), st.WorkerRestarts)
	require.Equal(t, int64(1), st.Processed)
}
