package queuetest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/queue/queuetest"
	"github.com/plba/plba/platform/task"
)

// Without faults, Faulty is the backend it wraps: it passes the suite.
func TestFaultyPassesTheSuite(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, queuetest.Features{FIFO: true}, func(t *testing.T) queue.Backend {
		return queuetest.NewFaulty(memory.New(memory.Options{}))
	})
}

func TestFaultyInjects(t *testing.T) {
	t.Parallel()
	mem := memory.New(memory.Options{})
	t.Cleanup(func() { _ = mem.Close(context.Background()) })
	f := queuetest.NewFaulty(mem)
	ctx := context.Background()
	boom := errors.New("boom")

	// Times and Match: only the matching task, only once.
	f.Inject(queuetest.OpEnqueue, queuetest.Fault{Err: boom, Times: 1, Match: func(t *task.Task) bool { return t.Key == "bad" }})
	require.NoError(t, f.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q", Key: "good"}))
	require.ErrorIs(t, f.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q", Key: "bad"}), boom)
	require.NoError(t, f.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q", Key: "bad"}), "used up")
	require.Equal(t, 3, f.Calls(queuetest.OpEnqueue))

	ds, err := f.Lease(ctx, "q", 2, time.Minute)
	require.NoError(t, err)
	require.Len(t, ds, 2)

	// Err without Applied: the backend was not called.
	f.Inject(queuetest.OpAck, queuetest.Fault{Err: boom, Times: 1})
	require.ErrorIs(t, f.Ack(ctx, ds[0]), boom)
	st, err := f.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, int64(2), st.InFlight, "not acked")
	// Applied: it was, and the caller hears the error all the same.
	f.Inject(queuetest.OpAck, queuetest.Fault{Err: boom, Applied: true, Times: 1})
	require.ErrorIs(t, f.Ack(ctx, ds[0]), boom)
	st, err = f.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.InFlight, "acked")

	// Delay past the caller's ctx: ctx.Err(), the backend not called.
	f.Inject(queuetest.OpRelease, queuetest.Fault{Delay: time.Hour})
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, f.Release(short, ds[1]), context.DeadlineExceeded)
	f.Clear(queuetest.OpRelease)
	require.NoError(t, f.Release(ctx, ds[1]))
	require.Equal(t, 2, f.Calls(queuetest.OpRelease))

	// Panic: the call panics; without Applied the backend was not called,
	// with it, it was.
	ds, err = f.Lease(ctx, "q", 1, time.Minute)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	f.Inject(queuetest.OpAck, queuetest.Fault{Panic: "backend bug", Times: 1})
	require.PanicsWithValue(t, "backend bug", func() { _ = f.Ack(ctx, ds[0]) })
	st, err = f.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.InFlight, "not acked")
	f.Inject(queuetest.OpAck, queuetest.Fault{Panic: "backend bug", Applied: true, Times: 1})
	require.PanicsWithValue(t, "backend bug", func() { _ = f.Ack(ctx, ds[0]) })
	st, err = f.Stats(ctx, "q")
	require.NoError(t, err)
	require.Zero(t, st.InFlight, "acked")
}

// TestFaultyFindsTasksThroughItsBackend: a Faulty wraps a backend that
// looks tasks up (queue.TaskFinder) and looks them up through it: a task
// whose Enqueue was cut with its outcome unknown, but stored, is found by
// its key. Wrapped, the backend could only list its dead letters.
func TestFaultyFindsTasksThroughItsBackend(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := memory.New(memory.Options{})
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	f := queuetest.NewFaulty(b)
	f.Inject(queuetest.OpEnqueue, queuetest.Fault{Err: queue.ErrOutcomeUnknown, Applied: true})
	tk := &task.Task{Kind: "k", Queue: "q", Key: "sched@2030-01-01T00:00:00Z"}
	require.ErrorIs(t, f.Enqueue(ctx, tk), queue.ErrOutcomeUnknown)
	s, err := queue.FindTasks(ctx, f, "q", queue.TaskLookup{Key: tk.Key})
	require.NoError(t, err)
	require.Len(t, s.Found, 1, "the stored task is found: %+v", s)
}
