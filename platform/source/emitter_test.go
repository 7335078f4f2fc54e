package source_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// panickingSource is a completing source whose Complete panics.
type panickingSource struct{ funcSource }

func (panickingSource) Complete(context.Context, *task.Task, task.Outcome, string) error {
	panic("completer bug")
}

// finishedTask enqueues a task with id on be, leases and acks it, so that
// the next task with that id is a duplicate of a finished one.
func finishedTask(t *testing.T, be *memory.Backend, id string) {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, be.Enqueue(ctx, &task.Task{ID: id, Kind: "k", Queue: "q"}))
	ds, err := be.Lease(ctx, "q", 1, time.Minute)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.NoError(t, be.Ack(ctx, ds[0]))
}

// TestEmitterCompletionPanicIsAnError: the completion the emitter makes
// for a duplicate of a finished task runs under the same guard as a
// pool's: a completer that panics gives Emit an error (wrapping
// task.PanicError); it does not panic through the source's Run. Before,
// the panic left Emit and the supervisor restarted the source, which
// emitted the task again and panicked again: a crash loop.
func TestEmitterCompletionPanicIsAnError(t *testing.T) {
	t.Parallel()
	be := memory.New(memory.Options{DedupWindow: time.Minute})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	finishedTask(t, be, "a")
	emit := source.NewEmitter(&panickingSource{funcSource{name: "mailbox"}}, be)
	var err error
	require.NotPanics(t, func() { err = emit.Emit(t.Context(), &task.Task{ID: "a", Kind: "k", Queue: "q"}) })
	var pe *task.PanicError
	require.ErrorAs(t, err, &pe)
}

// ctxSource is a completing source whose Complete reports whether its
// context has a deadline, then waits for its context or for release.
type ctxSource struct {
	funcSource
	deadline chan bool
	release  chan struct{}
}

func (c *ctxSource) Complete(ctx context.Context, _ *task.Task, _ task.Outcome, _ string) error {
	_, ok := ctx.Deadline()
	c.deadline <- ok
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.release:
		return nil
	}
}

// TestEmitterCompletionIsBounded: the emitter's completion gets a context
// with a deadline (source.DefaultCompleteTimeout), not the source's own
// context, which lives as long as the source: a completer that waits for
// its context does not hold Emit for ever.
func TestEmitterCompletionIsBounded(t *testing.T) {
	t.Parallel()
	be := memory.New(memory.Options{DedupWindow: time.Minute})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	finishedTask(t, be, "a")
	src := &ctxSource{funcSource: funcSource{name: "mailbox"}, deadline: make(chan bool, 1), release: make(chan struct{})}
	emit := source.NewEmitter(src, be)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- emit.Emit(ctx, &task.Task{ID: "a", Kind: "k", Queue: "q"}) }()
	require.True(t, <-src.deadline, "the completer's context has a deadline")
	cancel() // the test's own end: Emit's completion is detached from it
	select {
	case err := <-done:
		t.Fatalf("Emit returned when its context ended (%v): the completion should outlive a stopping source, within its bound", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(src.release)
	require.NoError(t, <-done)
}

// partialEnqueuer behaves as a backend whose Enqueue of a batch stores
// some tasks, drops some as duplicates of finished ones (task.MarkFinished)
// and fails the rest (jetstream.EnqueueError): it marks the tasks whose ID
// is in finished, fails those in failed, and returns an error naming them.
type partialEnqueuer struct {
	finished map[string]task.Outcome
	failed   map[string]bool
}

func (p *partialEnqueuer) Enqueue(_ context.Context, tasks ...*task.Task) error {
	var errs []error
	for _, t := range tasks {
		t.Prepare(time.Now())
		if o, ok := p.finished[t.ID]; ok {
			task.MarkFinished(t, o, "")
		}
		if p.failed[t.ID] {
			errs = append(errs, fmt.Errorf("task %s: %w", t.ID, queue.ErrTooLarge))
		}
	}
	return errors.Join(errs...)
}

// TestEmitterCompletesMarkedTasksOfAFailedBatch: when Enqueue fails for
// some tasks of a batch, the tasks it dropped as duplicates of finished
// ones are still told to the source, and Emit returns the enqueue error.
// Before, Emit returned at once: a source that emits only the failed tasks
// again never heard of the others.
func TestEmitterCompletesMarkedTasksOfAFailedBatch(t *testing.T) {
	t.Parallel()
	src := &completingSource{funcSource: funcSource{name: "mailbox"}}
	enq := &partialEnqueuer{finished: map[string]task.Outcome{"done": task.Succeeded}, failed: map[string]bool{"big": true}}
	emit := source.NewEmitter(src, enq)
	err := emit.Emit(t.Context(), &task.Task{ID: "done", Kind: "k"}, &task.Task{ID: "big", Kind: "k"}, &task.Task{ID: "new", Kind: "k"})
	require.ErrorIs(t, err, queue.ErrTooLarge)
	src.mu.Lock()
	defer src.mu.Unlock()
	require.Equal(t, map[string]task.Outcome{"done": task.Succeeded}, src.seen)
}

// TestEmitterIgnoresMarksFromOutside: a task that arrives at Emit with a
// finished mark (headers copied from outside, or a task emitted again
// after a backend marked it) is not told to its source when the enqueue
// fails before the backend looked at it: only the mark of this Enqueue
// counts.
func TestEmitterIgnoresMarksFromOutside(t *testing.T) {
	t.Parallel()
	be := memory.New(memory.Options{})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	src := &completingSource{funcSource: funcSource{name: "mailbox"}}
	emit := source.NewEmitter(src, be)
	forged := &task.Task{ID: "forged", Kind: "k", Queue: "q"}
	task.MarkFinished(forged, task.Succeeded, "")
	err := emit.Emit(t.Context(), forged, &task.Task{ID: "bad", Kind: "k"}) // no queue: the batch is invalid
	require.ErrorIs(t, err, queue.ErrInvalidTask)
	src.mu.Lock()
	defer src.mu.Unlock()
	require.Empty(t, src.seen)
}

// countingCompleter is a completing source that counts its completions by
// task id.
type countingCompleter struct {
	funcSource
	mu   sync.Mutex
	told map[string]int
}

func (c *countingCompleter) Complete(_ context.Context, t *task.Task, _ task.Outcome, _ string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.told == nil {
		c.told = map[string]int{}
	}
	c.told[t.ID]++
	return nil
}

// TestEmitterTellsTheVeryTaskTwiceInABatchOnce: the very Task twice in
// one batch is one task (queue.Producer: stored once by the batch): when
// the backend drops it as a duplicate of a finished one, its source is
// told that outcome once. Before, it was told once per place in the
// batch.
func TestEmitterTellsTheVeryTaskTwiceInABatchOnce(t *testing.T) {
	t.Parallel()
	be := memory.New(memory.Options{DedupWindow: time.Minute})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	finishedTask(t, be, "a")
	src := &countingCompleter{funcSource: funcSource{name: "mailbox"}}
	a := &task.Task{ID: "a", Kind: "k", Queue: "q"}
	require.NoError(t, source.NewEmitter(src, be).Emit(t.Context(), a, a))
	src.mu.Lock()
	defer src.mu.Unlock()
	require.Equal(t, map[string]int{"a": 1}, src.told)
}
