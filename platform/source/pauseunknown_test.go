package source_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// unknownErr is a batch's error naming every task of it: their publishes
// were sent, their answers not heard (as JetStream's EnqueueError says
// of publishes whose acks the caller's context cut).
type unknownErr struct{ ids map[string]bool }

func (e unknownErr) Error() string {
	return fmt.Sprintf("%d tasks: %v", len(e.ids), queue.ErrOutcomeUnknown)
}
func (e unknownErr) Unwrap() error { return queue.ErrOutcomeUnknown }
func (e unknownErr) NotStored(t *task.Task) bool {
	return e.ids[t.ID]
}

// lostAnswers stores every task it is given, as a backend that
// de-duplicates by key does: its first Enqueue stores the batch, then
// waits for its context (the answers lost) and fails with the outcome of
// every task unknown; a later Enqueue of a task stored already marks it
// so (task.MarkStoredAgain).
type lostAnswers struct {
	entered chan struct{}
	mu      sync.Mutex
	stored  map[string]bool
	calls   int
}

func (l *lostAnswers) Enqueue(ctx context.Context, tasks ...*task.Task) error {
	l.mu.Lock()
	l.calls++
	first := l.calls == 1
	again := map[*task.Task]bool{}
	for _, t := range tasks {
		t.Prepare(time.Now())
		if l.stored[t.ID] {
			again[t] = true
		}
		l.stored[t.ID] = true
	}
	l.mu.Unlock()
	if !first {
		for t := range again {
			task.MarkStoredAgain(t)
		}
		return nil
	}
	close(l.entered)
	<-ctx.Done()
	e := unknownErr{ids: map[string]bool{}}
	for _, t := range tasks {
		e.ids[t.ID] = true
	}
	return e
}

// TestPausedEmitCountsATaskStoredByTheEnqueueItCut: an Emit whose Enqueue
// the pause cut after the backend stored its task, unanswered (the
// outcome unknown), enqueues the task again; the backend finds it stored
// (task.StoredAgain): it was stored by this Emit, and Emitted counts it.
// Before, the cut Enqueue counted it not stored and the next one stored
// nothing: Emitted was 0 for a task stored.
func TestPausedEmitCountsATaskStoredByTheEnqueueItCut(t *testing.T) {
	t.Parallel()
	enq := &lostAnswers{entered: make(chan struct{}), stored: map[string]bool{}}
	done := make(chan error, 1)
	src := emitOnce("feed", func(ctx context.Context, e source.Emitter) error {
		return e.Emit(ctx, &task.Task{Kind: "k", Queue: "q"})
	}, done)
	s, err := source.NewSupervisor(source.Config{}, enq, lifecycle.NewRegistry(nil, nil), nil, src)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	defer stopSupervisor(t, s)
	select {
	case <-enq.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the Emit did not come")
	}
	require.NoError(t, s.Pause("feed"))
	require.NoError(t, s.Resume("feed"))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Emit did not return after Resume")
	}
	enq.mu.Lock()
	require.Equal(t, 2, enq.calls, "enqueued again once")
	require.Len(t, enq.stored, 1)
	enq.mu.Unlock()
	require.EqualValues(t, 1, statsOf(t, s).Emitted, "the task stored by the Enqueue the pause cut")
	require.Zero(t, statsOf(t, s).Duplicates)
}

// forgetful is lostAnswers whose de-duplication ends once forget is set
// (a JetStream duplicate window passed: a task with a key it generated is
// then stored again); stores counts the times each task was stored.
type forgetful struct {
	entered chan struct{}
	mu      sync.Mutex
	forget  bool
	stores  map[string]int
	calls   int
}

func (f *forgetful) Enqueue(ctx context.Context, tasks ...*task.Task) error {
	f.mu.Lock()
	f.calls++
	first := f.calls == 1
	var again []*task.Task
	for _, t := range tasks {
		t.Prepare(time.Now())
		if f.stores[t.ID] > 0 && !f.forget {
			again = append(again, t)
			continue
		}
		f.stores[t.ID]++
	}
	f.mu.Unlock()
	for _, t := range again {
		task.MarkStoredAgain(t)
	}
	if !first {
		return nil
	}
	close(f.entered)
	<-ctx.Done()
	e := unknownErr{ids: map[string]bool{}}
	for _, t := range tasks {
		e.ids[t.ID] = true
	}
	return e
}

// TestPauseLongerThanTheDuplicateWindowStoresACutTaskOnce: the pause cut
// an Emit's Enqueue whose task the backend stored, unanswered; the pause
// lasts longer than the backend remembers the task's key (JetStream's
// duplicate_window, 2 minutes by default). The task is stored once: the
// emitter settles the tasks whose outcome the cut left unknown at once,
// while the backend still finds them stored, not after Resume. Before,
// the Enqueue after Resume stored the task a second time.
func TestPauseLongerThanTheDuplicateWindowStoresACutTaskOnce(t *testing.T) {
	t.Parallel()
	enq := &forgetful{entered: make(chan struct{}), stores: map[string]int{}}
	done := make(chan error, 1)
	src := emitOnce("feed", func(ctx context.Context, e source.Emitter) error {
		return e.Emit(ctx, &task.Task{Kind: "k", Queue: "q"})
	}, done)
	s, err := source.NewSupervisor(source.Config{}, enq, lifecycle.NewRegistry(nil, nil), nil, src)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	defer stopSupervisor(t, s)
	select {
	case <-enq.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the Emit did not come")
	}
	require.NoError(t, s.Pause("feed"))
	time.Sleep(time.Second) // the emitter settles what the cut left unknown
	enq.mu.Lock()
	enq.forget = true // the duplicate window has passed
	enq.mu.Unlock()
	require.NoError(t, s.Resume("feed"))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Emit did not return after Resume")
	}
	enq.mu.Lock()
	require.Len(t, enq.stores, 1)
	for id, n := range enq.stores {
		require.Equal(t, 1, n, "task %s stored once", id)
	}
	enq.mu.Unlock()
	require.EqualValues(t, 1, statsOf(t, s).Emitted)
}
