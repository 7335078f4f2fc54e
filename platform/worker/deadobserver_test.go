package worker_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// panickyDeadObserver is a task.DeadObserver whose DeadLettered panics.
type panickyDeadObserver struct{ task.NopObserver }

func (panickyDeadObserver) DeadLettered(context.Context, *task.Task, string) { panic("telemetry bug") }

// TestPanickingDeadObserverCostsTheBackendNothing: an observer whose
// DeadLettered panics, told of a dead letter the backend made on its own,
// is logged; the dead letter is counted and told to its source all the
// same. The panic went into the backend's report, on whatever goroutine
// the backend made it on (the memory backend's caller, JetStream's
// watcher: the process).
func TestPanickingDeadObserverCostsTheBackendNothing(t *testing.T) {
	t.Parallel()
	be := memory.New(memory.Options{MaxDeliveries: 1})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	src := &inbox{emit: []string{"o1"}}
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": fast}, Routes: []task.Route{orderRoute},
		Sources: []source.Source{src}, Observer: panickyDeadObserver{}})
	require.NoError(t, err)
	require.NoError(t, rt.StartPools(context.Background()))
	p, _ := rt.Pool("orders")
	p.Pause() // a consumer elsewhere takes the task instead
	require.NoError(t, rt.StartSources(context.Background()))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := be.Lease(ctx, "orders", 1, 20*time.Millisecond) // and dies
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Eventually(t, func() bool {
		require.NotPanics(t, func() { _, _ = be.Stats(context.Background(), "orders") }) // the backend notices the expired lease
		return len(src.snapshot()) == 1
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, int64(1), p.Stats().Dead)
	require.NoError(t, rt.Stop(context.Background()))
}

// goexitDeadObserver is a task.DeadObserver whose DeadLettered ends its
// goroutine (runtime.Goexit: a test's observer calling FailNow, say).
type goexitDeadObserver struct{ task.NopObserver }

func (goexitDeadObserver) DeadLettered(context.Context, *task.Task, string) { runtime.Goexit() }

// TestGoexitingDeadObserverCostsTheBackendNothing: an observer whose
// DeadLettered calls runtime.Goexit, told of a dead letter the backend
// made on its own, ends no goroutine of the backend's: the report
// returns, and the dead letter is counted and told to its source. It
// ended the goroutine the backend reported on (JetStream's watcher: no
// dead letter reported again), and the source was not told.
func TestGoexitingDeadObserverCostsTheBackendNothing(t *testing.T) {
	t.Parallel()
	be := &deadHook{Backend: newMemory(t)}
	src := &inbox{}
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": fast}, Routes: []task.Route{orderRoute},
		Sources: []source.Source{src}, Observer: goexitDeadObserver{}})
	require.NoError(t, err)
	require.NoError(t, rt.StartPools(context.Background()))
	t.Cleanup(func() { require.NoError(t, rt.StopPools(context.Background())) })

	tk := &task.Task{ID: "t1", Kind: "mail.order", Queue: "orders", Payload: []byte("o1")}
	tk.SetHeader(task.HeaderCompletion, src.Name())
	reported := make(chan struct{})
	go func() {
		be.report(queue.DeadLetter{Task: tk, Reason: "too many deliveries"})
		close(reported)
	}()
	within(t, reported, "the backend's report to return")
	require.Eventually(t, func() bool { return len(src.snapshot()) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, map[string][]task.Outcome{"o1": {task.DeadLettered}}, src.snapshot())
	p, _ := rt.Pool("orders")
	require.Equal(t, int64(1), p.Stats().Dead)
}
