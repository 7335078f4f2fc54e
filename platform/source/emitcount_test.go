package source_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// emitOnce is a source whose Run calls emit once with the emitter, reports
// its error on done, then waits for its context.
func emitOnce(name string, emit func(ctx context.Context, e source.Emitter) error, done chan<- error) source.Source {
	return &funcSource{name: name, run: func(ctx context.Context, e source.Emitter) error {
		done <- emit(ctx, e)
		<-ctx.Done()
		return nil
	}}
}

// statsOf returns the supervisor's only source's Stats.
func statsOf(t *testing.T, s *source.Supervisor) source.Stats {
	t.Helper()
	st := s.Stats()
	require.Len(t, st, 1)
	return st[0]
}

// TestEmittedCountsTheTasksStoredAndDuplicatesApart: a source's Emitted
// counts the tasks the backend stored, Duplicates the ones it dropped as
// duplicates of another task (one that finished, one still queued), and a
// task emitted again while it is stored, or twice in one batch, is
// counted once. Before, Emitted counted every task handed to a successful
// Enqueue: 6 for 2 stored.
func TestEmittedCountsTheTasksStoredAndDuplicatesApart(t *testing.T) {
	t.Parallel()
	be := memory.New(memory.Options{DedupWindow: time.Minute})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	finishedTask(t, be, "done")
	require.NoError(t, be.Enqueue(t.Context(), &task.Task{Key: "held", Kind: "k", Queue: "q"}))
	done := make(chan error, 1)
	src := emitOnce("mailbox", func(ctx context.Context, e source.Emitter) error {
		a := &task.Task{ID: "a", Kind: "k", Queue: "q"}
		err := e.Emit(ctx, a, a, &task.Task{ID: "done", Kind: "k", Queue: "q"},
			&task.Task{Key: "held", Kind: "k", Queue: "q"}, &task.Task{ID: "b", Kind: "k", Queue: "q"})
		if err != nil {
			return err
		}
		return e.Emit(ctx, a) // stored already: stores nothing
	}, done)
	s, err := source.NewSupervisor(source.Config{}, be, lifecycle.NewRegistry(nil, nil), nil, src)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	defer stopSupervisor(t, s)
	require.NoError(t, <-done)
	st := statsOf(t, s)
	require.EqualValues(t, 2, st.Emitted, "a and b stored")
	require.EqualValues(t, 2, st.Duplicates, "done (finished) and held (queued) dropped")
	require.False(t, st.LastEmit.IsZero())
}

// TestEmittedCountsTheStoredTasksOfAPartlyFailedJetStreamBatch: a
// JetStream batch of which one task is refused (too large) stores the
// others, and Emit returns the EnqueueError: Emitted counts the tasks
// stored. Before, a batch that failed counted none.
func TestEmittedCountsTheStoredTasksOfAPartlyFailedJetStreamBatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	be, err := jetstream.Open(ctx, jetstream.Params{Config: jetstream.Config{Mode: jetstream.ModeEmbedded,
		AckWait: time.Minute, Embedded: embedded.Config{StoreDir: t.TempDir()}}})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = be.Close(ctx)
	})
	big := []byte(strings.Repeat("x", int(be.MaxPayload())+1))
	done := make(chan error, 1)
	src := emitOnce("feed", func(ctx context.Context, e source.Emitter) error {
		return e.Emit(ctx, &task.Task{ID: "a", Kind: "k", Queue: "q"}, &task.Task{ID: "big", Kind: "k", Queue: "q", Payload: big},
			&task.Task{ID: "b", Kind: "k", Queue: "q"})
	}, done)
	s, err := source.NewSupervisor(source.Config{}, be, lifecycle.NewRegistry(nil, nil), nil, src)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	defer stopSupervisor(t, s)
	var ee *jetstream.EnqueueError
	require.ErrorAs(t, <-done, &ee)
	require.Len(t, ee.Failed, 1)
	st := statsOf(t, s)
	require.EqualValues(t, 2, st.Emitted, "a and b stored")
	require.Zero(t, st.Duplicates)
	for id, n := range map[string]int{"a": 1, "b": 1, "big": 0} {
		found, err := be.FindTasks(ctx, "q", queue.TaskLookup{ID: id})
		require.NoError(t, err)
		require.Len(t, found.Found, n, "the backend holds what Emitted says: task %s", id)
	}
}
