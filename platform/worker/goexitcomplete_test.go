package worker_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// exitingInbox is an inbox whose Complete ends its goroutine with
// runtime.Goexit (testing's FailNow, say) for the task whose payload is
// exit. Its Run emits exit, waits until that task's completion called
// Goexit (when told is true) and then emits next.
type exitingInbox struct {
	inbox
	exit, next string
	exited     chan struct{}
}

func newExitingInbox(exit, next string) *exitingInbox {
	return &exitingInbox{exit: exit, next: next, exited: make(chan struct{})}
}

func (s *exitingInbox) Run(ctx context.Context, emit source.Emitter) error {
	if err := emit.Emit(ctx, &task.Task{Kind: "mail.order", Payload: []byte(s.exit)}); err != nil {
		return err
	}
	select {
	case <-s.exited:
	case <-ctx.Done():
		return nil
	}
	if err := emit.Emit(ctx, &task.Task{Kind: "mail.order", Payload: []byte(s.next)}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func (s *exitingInbox) Complete(ctx context.Context, t *task.Task, o task.Outcome, reason string) error {
	if string(t.Payload) == s.exit {
		close(s.exited)
		runtime.Goexit()
	}
	return s.inbox.Complete(ctx, t, o, reason)
}

// stopWithin stops rt and fails the test unless Stop returns, without
// error, within 10 s.
func stopWithin(t *testing.T, rt *worker.Runtime) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rt.Stop(ctx) }()
	require.NoError(t, within(t, done, "Stop to return"))
}

// TestCompleteGoexitIsAFailedCompletion: a source's Complete that calls
// runtime.Goexit, after a success or a dead letter the pool made, is a
// failed completion (counted, logged, the settlement stands) and the
// worker goes on: the observer hears the delivery finish, and the next
// task's outcome is told to the source. It used to take the worker with
// it, after the settlement: counted as a worker crash, not as a failed
// completion, and the observer never heard how the delivery ended.
func TestCompleteGoexitIsAFailedCompletion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, exit string
		want       task.Outcome
	}{
		{"succeeded", "o1", task.Succeeded},
		{"dead-lettered", "spam", task.DeadLettered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be := newMemory(t)
			src := newExitingInbox(tc.exit, "o2")
			obs := &outcomes{}
			cfg := fast
			cfg.Concurrency = 1
			rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": cfg},
				Routes: []task.Route{orderRoute}, Sources: []source.Source{src}, Observer: obs})
			require.NoError(t, err)
			require.NoError(t, rt.Start(context.Background()))
			p, _ := rt.Pool("orders")
			require.Eventually(t, func() bool { return len(src.snapshot()) == 1 && p.Stats().Processed == 2 },
				10*time.Second, time.Millisecond, "told %v, stats %+v", src.snapshot(), p.Stats())
			require.Equal(t, map[string][]task.Outcome{"o2": {task.Succeeded}}, src.snapshot())
			st := p.Stats()
			require.Equal(t, int64(1), st.CompletionFailed)
			require.Zero(t, st.WorkerRestarts, "the completion failed, not the worker")
			require.Contains(t, st.LastError, "runtime.Goexit")
			require.Eventually(t, func() bool { outs, _ := obs.snapshot(); return len(outs) == 2 }, 5*time.Second, time.Millisecond)
			outs, _ := obs.snapshot()
			require.Equal(t, []task.Outcome{tc.want, task.Succeeded}, outs)
			stopWithin(t, rt)
			requireEmptyBut(t, be, tc.want == task.DeadLettered)
		})
	}
}

// requireEmptyBut checks that the orders queue of be holds nothing but,
// when dead, one dead letter.
func requireEmptyBut(t *testing.T, be *memory.Backend, dead bool) {
	t.Helper()
	if !dead {
		requireEmpty(t, be, "orders")
		return
	}
	qs, err := be.Stats(context.Background(), "orders")
	require.NoError(t, err)
	require.Zero(t, qs.Ready+qs.Delayed+qs.InFlight, "%+v", qs)
	require.Equal(t, 1, int(qs.Dead), "%+v", qs)
}

// TestBackendDeadLetterCompleteGoexitTellsTheNext: a source's Complete
// that calls runtime.Goexit for a task the backend dead-lettered on its
// own is a failed completion; the dead letters after it are still told to
// their source while the runtime runs, and Stop returns. It used to end
// the runtime's one goroutine that tells them: the next dead letter was
// told only at Stop.
func TestBackendDeadLetterCompleteGoexitTellsTheNext(t *testing.T) {
	t.Parallel()
	be := memory.New(memory.Options{MaxDeliveries: 1})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	src := newExitingInbox("x1", "x2")
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": fast}, Routes: []task.Route{orderRoute},
		Sources: []source.Source{src}})
	require.NoError(t, err)
	require.NoError(t, rt.StartPools(context.Background()))
	p, _ := rt.Pool("orders")
	p.Pause() // a consumer elsewhere takes the tasks instead
	require.NoError(t, rt.StartSources(context.Background()))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	expire := func() { // lease the next task and let the lease expire
		ds, err := be.Lease(ctx, "orders", 1, 20*time.Millisecond)
		require.NoError(t, err)
		require.Len(t, ds, 1)
	}
	expire() // x1, whose completion calls Goexit
	require.Eventually(t, func() bool {
		_, _ = be.Stats(context.Background(), "orders") // the backend notices the expired lease
		return p.Stats().CompletionFailed == 1
	}, 10*time.Second, 5*time.Millisecond, "stats %+v", p.Stats())
	require.Contains(t, p.Stats().LastError, "runtime.Goexit")
	expire() // x2, emitted once x1's completion ended
	require.Eventually(t, func() bool {
		_, _ = be.Stats(context.Background(), "orders")
		return len(src.snapshot()) == 1
	}, 10*time.Second, 5*time.Millisecond, "x2 told while the runtime runs")
	require.Equal(t, map[string][]task.Outcome{"x2": {task.DeadLettered}}, src.snapshot())
	require.Equal(t, int64(2), p.Stats().Dead)
	stopWithin(t, rt)
}
