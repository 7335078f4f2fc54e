package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// A backend without TaskFinder (here: the memory backend behind a wrapper
// that hides it) is searched among its dead letters only, and the answer
// says so; a lookup needs exactly one of id and key.
func TestFindTasksFallsBackToDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mb := memory.New(memory.Options{})
	t.Cleanup(func() { _ = mb.Close(ctx) })
	var b queue.Backend = struct{ queue.Backend }{mb}
	_, hides := b.(queue.TaskFinder)
	require.False(t, hides, "the wrapper has no TaskFinder")

	dead := &task.Task{Kind: "k", Queue: "q", Key: "dead-1"}
	waiting := &task.Task{Kind: "k", Queue: "q", Key: "waiting-1"}
	require.NoError(t, b.Enqueue(ctx, dead))
	ds, err := b.Lease(ctx, "q", 1, time.Minute)
	require.NoError(t, err)
	require.NoError(t, b.DeadLetter(ctx, ds[0], "broken"))
	require.NoError(t, b.Enqueue(ctx, waiting))

	s, err := queue.FindTasks(ctx, b, "q", queue.TaskLookup{ID: dead.ID})
	require.NoError(t, err)
	require.Len(t, s.Found, 1)
	require.Equal(t, queue.StateDead, s.Found[0].State)
	require.Equal(t, "broken", s.Found[0].Reason)
	require.Equal(t, []string{"dead letters"}, s.Searched)
	require.NotEmpty(t, s.NotSearched)

	s, err = queue.FindTasks(ctx, b, "q", queue.TaskLookup{Key: "waiting-1"})
	require.NoError(t, err)
	require.Empty(t, s.Found, "a waiting task is not found without a TaskFinder")

	s, err = queue.FindTasks(ctx, mb, "q", queue.TaskLookup{Key: "waiting-1"})
	require.NoError(t, err)
	require.Len(t, s.Found, 1, "the memory backend finds it")
	require.Equal(t, queue.StateReady, s.Found[0].State)

	_, err = queue.FindTasks(ctx, b, "q", queue.TaskLookup{})
	require.True(t, errors.Is(err, queue.ErrBadLookup))
	_, err = queue.FindTasks(ctx, b, "q", queue.TaskLookup{ID: "a", Key: "b"})
	require.ErrorIs(t, err, queue.ErrBadLookup)
}
