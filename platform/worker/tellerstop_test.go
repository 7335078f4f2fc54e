package worker_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// deadHook is a memory backend whose dead letters made on its own are
// reported by the test (report), as a backend's watcher would.
type deadHook struct {
	*memory.Backend
	mu sync.Mutex
	fn func(queue.DeadLetter)
}

func (b *deadHook) WatchDead(fn func(queue.DeadLetter)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fn = fn
}

func (b *deadHook) report(dl queue.DeadLetter) {
	b.mu.Lock()
	fn := b.fn
	b.mu.Unlock()
	fn(dl)
}

// slowCompleter's Complete waits until its context ends; it counts the
// calls begun and those that returned.
type slowCompleter struct {
	inbox
	began, ended atomic.Int64
}

func (s *slowCompleter) Complete(ctx context.Context, _ *task.Task, _ task.Outcome, _ string) error {
	s.began.Add(1)
	defer s.ended.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

// TestTellerEndsWithStopPools: when StopPools' ctx ends while the runtime
// still tells sources of dead letters the backend made, the telling in
// progress is cancelled, the rest is not begun (counted as failed
// completions), and the telling goroutine ends: a later StopPools finds
// it ended. It went on telling with a context of its own (here each
// Complete would have waited out its task timeout, a minute), owned by
// nothing, long after the runtime stopped.
func TestTellerEndsWithStopPools(t *testing.T) {
	t.Parallel()
	be := &deadHook{Backend: newMemory(t)}
	src := &slowCompleter{}
	cfg := fast
	cfg.TaskTimeout = time.Minute
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": cfg}, Routes: []task.Route{orderRoute},
		Sources: []source.Source{src}})
	require.NoError(t, err)
	require.NoError(t, rt.StartPools(context.Background()))
	for _, id := range []string{"t1", "t2"} {
		tk := &task.Task{ID: id, Kind: "mail.order", Queue: "orders"}
		tk.SetHeader(task.HeaderCompletion, src.Name())
		be.report(queue.DeadLetter{Task: tk, Reason: "too many deliveries"})
	}
	require.Eventually(t, func() bool { return src.began.Load() == 1 }, 10*time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, rt.StopPools(ctx), context.DeadlineExceeded, "the source's Complete outlived StopPools' ctx")
	require.Eventually(t, func() bool { return src.ended.Load() == 1 }, 10*time.Second, time.Millisecond,
		"the Complete in progress was not cancelled")
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, rt.StopPools(ctx), "the teller goroutine ended")
	require.Equal(t, int64(1), src.began.Load(), "a Complete begun after the runtime stopped")
	p, _ := rt.Pool("orders")
	require.Equal(t, int64(2), p.Stats().CompletionFailed, "the one cut short and the one not told")
}

// TestStopPoolsWithAnEndedCtxTellsWhatIsQueued: StopPools called with a
// ctx that has ended already (its caller out of time, or cancelled)
// gives the outcomes the backend found a grace of its own, as the pools
// give their own telling then: a dead letter reported just before is
// told, and StopPools, every pool and the telling ended, returns nil. The
// telling was cut at once: StopPools returned an error saying the
// telling was cut short, also when nothing was left to tell, and what
// was queued was not told.
func TestStopPoolsWithAnEndedCtxTellsWhatIsQueued(t *testing.T) {
	t.Parallel()
	be := &deadHook{Backend: newMemory(t)}
	src := &inbox{}
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": fast}, Routes: []task.Route{orderRoute},
		Sources: []source.Source{src}})
	require.NoError(t, err)
	for _, p := range rt.Pools() {
		worker.SetStopGrace(p, time.Second) // a loaded machine keeps it
	}
	require.NoError(t, rt.StartPools(context.Background()))
	tk := &task.Task{ID: "t1", Kind: "mail.order", Queue: "orders", Payload: []byte("o1")}
	tk.SetHeader(task.HeaderCompletion, src.Name())
	be.report(queue.DeadLetter{Task: tk, Reason: "too many deliveries"})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, rt.StopPools(ctx))
	require.Equal(t, map[string][]task.Outcome{"o1": {task.DeadLettered}}, src.snapshot())
	p, _ := rt.Pool("orders")
	require.Zero(t, p.Stats().CompletionFailed)
}
