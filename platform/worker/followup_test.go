package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// TestFollowUpClonedFromASourcesTaskIsNotToldToTheSource: a handler that
// makes a follow-up from the task it handles with task.Clone, and
// enqueues it through the producer, does not make the source of its task
// hear the follow-up's outcome: the follow-up is stored without the
// inherited task.HeaderCompletion, and the source hears one outcome, its
// own task's. The handler's task keeps its header. Before, the follow-up
// kept the header and the source was told "succeeded" for its mail, then
// "dead_lettered" for the same mail when the follow-up failed.
func TestFollowUpClonedFromASourcesTaskIsNotToldToTheSource(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	src := &inbox{emit: []string{"o1"}}
	var (
		enq      atomic.Pointer[worker.Producer]
		kept     atomic.Value // the handled task's completion header after the Enqueue
		followed atomic.Int64
	)
	order := task.Route{Kind: "mail.order", Queue: "orders", MaxAttempts: 1, Handler: task.HandlerFunc(func(ctx context.Context, t *task.Task) error {
		next := t.Clone()
		next.ID, next.Key, next.Kind = "", "", "mail.followup"
		if err := enq.Load().Enqueue(ctx, next); err != nil {
			return err
		}
		kept.Store(t.Header(task.HeaderCompletion))
		return nil
	})}
	followup := task.Route{Kind: "mail.followup", Queue: "orders", MaxAttempts: 1, Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
		followed.Add(1)
		return task.Permanentf("the follow-up fails")
	})}
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": fast}, Routes: []task.Route{order, followup},
		Sources: []source.Source{src}})
	require.NoError(t, err)
	enq.Store(rt.Producer())
	require.NoError(t, rt.Start(context.Background()))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = rt.Stop(context.Background())
		}
	})

	p, _ := rt.Pool("orders")
	require.Eventually(t, func() bool { return p.Stats().Dead == 1 && followed.Load() == 1 }, 10*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return len(src.snapshot()["o1"]) >= 1 }, 10*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, rt.Stop(ctx)) // what is left to tell is told
	stopped = true
	require.Equal(t, map[string][]task.Outcome{"o1": {task.Succeeded}}, src.snapshot(), "the source hears its own task's outcome, once")
	require.Equal(t, "inbox", kept.Load(), "the handled task keeps its header")
	dead, err := be.ListDead(context.Background(), "orders", 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "mail.followup", dead[0].Task.Kind)
	require.Empty(t, dead[0].Task.Header(task.HeaderCompletion), "the follow-up was stored without the inherited header")
}

// TestTaskWithAnInheritedHeaderGetsItsCopysMarks: a task whose inherited
// completion header the producer leaves out is stored as a copy; the
// caller still reads what its Enqueue did from its own task (held by the
// task with its key, stored already, and counted once when twice in a
// batch), and its own headers are untouched.
func TestTaskWithAnInheritedHeaderGetsItsCopysMarks(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	rt, err := worker.New(worker.Params{Backend: be})
	require.NoError(t, err)
	ctx := context.Background()
	p := rt.Producer()
	inherited := func(key string) *task.Task {
		tk := &task.Task{Kind: "k", Key: key}
		tk.SetHeader(task.HeaderCompletion, "inbox")
		return tk
	}
	first := inherited("order-1")
	require.NoError(t, p.Enqueue(ctx, first, first))
	require.Equal(t, "inbox", first.Header(task.HeaderCompletion), "the caller's task keeps its headers")
	require.False(t, task.Dropped(first))
	require.Equal(t, map[string]int64{task.DefaultQueue: 1}, p.Enqueued(), "the very Task twice is stored once")

	held := inherited("order-1")
	require.NoError(t, p.Enqueue(ctx, held))
	by, ok := task.Held(held)
	require.True(t, ok, "the duplicate is marked held")
	require.Equal(t, first.ID, by)

	require.NoError(t, p.Enqueue(ctx, first))
	require.True(t, task.StoredAgain(first), "the task stored already is marked so")
	require.Equal(t, map[string]int64{task.DefaultQueue: 1}, p.Enqueued())

	found, err := be.FindTasks(ctx, task.DefaultQueue, queue.TaskLookup{Key: "order-1"})
	require.NoError(t, err)
	require.Len(t, found.Found, 1)
	require.Empty(t, found.Found[0].Task.Header(task.HeaderCompletion), "stored without the inherited header")
}
