package memory_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// TestDeadLettersAreBounded: past Options.MaxDead the oldest dead letter of
// the queue is discarded, counted in Stats.DeadDiscarded and logged; the
// newest ones stay listed. Dead letters used to grow without bound.
func TestDeadLettersAreBounded(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.WarnLevel)
	b := newBackend(t, memory.Options{MaxDead: 3, Logger: zap.New(core)})
	ctx := context.Background()
	for i := range 5 {
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: fmt.Sprint("t", i), Kind: "k", Queue: "q"}))
		ds, err := b.Lease(ctx, "q", 1, time.Minute)
		require.NoError(t, err)
		require.NoError(t, b.DeadLetter(ctx, ds[0], "bad"))
	}
	st, err := b.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, int64(3), st.Dead)
	require.Equal(t, int64(2), st.DeadDiscarded)
	dead, err := b.ListDead(ctx, "q", 0)
	require.NoError(t, err)
	require.Equal(t, []string{"t2", "t3", "t4"}, []string{dead[0].Task.ID, dead[1].Task.ID, dead[2].Task.ID})
	// Logged once (at most once a minute per queue), with the count.
	require.Equal(t, 1, logs.FilterMessage("dead-letter bound reached: oldest dead letter discarded").Len())
	require.Equal(t, "t0", logs.All()[0].ContextMap()["task"])

	// A discarded dead letter's key is free again (no window configured).
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "again", Key: "t0", Kind: "k", Queue: "q"}))
	st, err = b.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Ready)
}

func TestMaxDeadDefaultAndValidation(t *testing.T) {
	t.Parallel()
	require.Equal(t, memory.DefaultMaxDead, memory.Options{}.WithDefaults().MaxDead)
	require.ErrorContains(t, memory.Options{MaxDead: -1}.Validate(), "max_dead: must not be negative (got -1)")
}

// TestWatchDeadReportsExpiredLeases: a task the backend dead-letters on
// its own (its lease expired MaxDeliveries times) is reported to the
// function registered with WatchDead, with its reason; dead letters made
// by DeadLetter are not (the caller knows of them).
func TestWatchDeadReportsExpiredLeases(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{MaxDeliveries: 1})
	var (
		mu  sync.Mutex
		got []queue.DeadLetter
	)
	b.WatchDead(func(dl queue.DeadLetter) {
		mu.Lock()
		got = append(got, dl)
		mu.Unlock()
	})
	ctx := context.Background()
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "told", Kind: "k", Queue: "q"}, &task.Task{ID: "settled", Kind: "k", Queue: "q"}))
	ds, err := b.Lease(ctx, "q", 2, 20*time.Millisecond)
	require.NoError(t, err)
	require.Len(t, ds, 2)
	require.NoError(t, b.DeadLetter(ctx, ds[1], "by the caller"))
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, "q")
		return err == nil && st.Dead == 2
	}, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 1)
	require.Equal(t, "told", got[0].Task.ID)
	require.Equal(t, "lease expired 1 times", got[0].Reason)
	require.Equal(t, 1, got[0].Task.Attempt)
}
