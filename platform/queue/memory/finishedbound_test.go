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

	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// The keys a queue remembers after their task finished are bounded by
// Options.MaxFinishedKeys: a flood of unique keys forgets the oldest
// before their window ends, and the newest are still refused.
func TestFinishedKeysAreBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const max, n = 10, 25
	b := newBackend(t, memoryOptions(time.Hour, max))
	for i := range n {
		require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q", Key: fmt.Sprintf("key-%d", i)}))
	}
	for _, d := range lease(t, b, n) {
		require.NoError(t, b.Ack(ctx, d))
	}
	for i := range n {
		again := &task.Task{Kind: "k", Queue: "q", Key: fmt.Sprintf("key-%d", i)}
		require.NoError(t, b.Enqueue(ctx, again))
		o, _, finished := task.Finished(again)
		if i < n-max {
			require.False(t, finished, "key-%d is beyond the bound: forgotten, stored again", i)
		} else {
			require.True(t, finished, "key-%d is among the %d newest: still refused", i, max)
			require.Equal(t, task.Succeeded, o)
		}
	}
}

func memoryOptions(window time.Duration, maxFinished int) memory.Options {
	return memory.Options{DedupWindow: window, MaxFinishedKeys: maxFinished}
}

// The bound is kept apart for producers' keys and generated ones: a
// flood of keyless tasks finishing (more than the bound) forgets the
// oldest generated keys, never a producer's key whose window still runs.
// Sharing one bound, about 830 keyless tasks a second on a queue pushed
// a producer's key out within its 2-minute window, and the key was
// stored again.
func TestKeylessTasksDoNotPushAProducersKeyOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const max = 10
	b := newBackend(t, memoryOptions(time.Hour, max))
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q", Key: "order-1"}))
	for _, d := range lease(t, b, 1) {
		require.NoError(t, b.Ack(ctx, d))
	}
	for range 3 {
		flood := make([]*task.Task, max)
		for i := range flood {
			flood[i] = &task.Task{Kind: "k", Queue: "q"}
		}
		require.NoError(t, b.Enqueue(ctx, flood...))
		for _, d := range lease(t, b, max) {
			require.NoError(t, b.Ack(ctx, d))
		}
	}
	again := &task.Task{Kind: "k", Queue: "q", Key: "order-1"}
	require.NoError(t, b.Enqueue(ctx, again))
	o, _, finished := task.Finished(again)
	require.True(t, finished, "a producer's key within its window is still refused")
	require.Equal(t, task.Succeeded, o)
}

// TestKeysForgottenEarlyAreCountedAndLogged: a key the bound forgets
// before its window ended is counted (queue.Stats.FinishedKeysForgotten)
// and logged at most once a minute per queue, with the count since the
// last line; a key whose window had ended when the bound dropped it is
// not counted (its de-duplication was whole). The bound forgot them
// silently: nothing told an operator that a copy within the window would
// be stored and run again.
func TestKeysForgottenEarlyAreCountedAndLogged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	core, logs := observer.New(zapcore.WarnLevel)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	const max = 10
	b := newBackend(t, memory.Options{DedupWindow: time.Hour, MaxFinishedKeys: max, Logger: zap.New(core), Now: clock})
	finish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q", Key: fmt.Sprintf("key-%d", i)}))
			require.NoError(t, b.Ack(ctx, lease(t, b, 1)[0]))
		}
	}
	forgotten := func() int64 {
		t.Helper()
		st, err := b.Stats(ctx, "q")
		require.NoError(t, err)
		return st.FinishedKeysForgotten
	}
	const msg = "finished-key bound reached: oldest key forgotten before its de-duplication window ended"
	finish(0, 25)
	require.Equal(t, int64(15), forgotten())
	require.Equal(t, 1, logs.FilterMessage(msg).Len(), "once a minute at most")
	first := logs.FilterMessage(msg).All()[0].ContextMap()
	require.Equal(t, "q", first["queue"])
	require.Equal(t, "key-0", first["key"])

	advance(2 * time.Minute) // the next line may come, with the count since
	finish(25, 30)
	require.Equal(t, int64(20), forgotten())
	lines := logs.FilterMessage(msg).All()
	require.Len(t, lines, 2)
	require.Equal(t, int64(15), lines[1].ContextMap()["forgotten_since_last_report"], "14 unreported, and this one")
	require.Equal(t, int64(16), lines[1].ContextMap()["forgotten_total"])

	// A key whose window ended when the bound drops it is not counted:
	// five tasks stored (nothing pruned yet), acked after the windows of
	// the ten remembered ended.
	for i := 30; i < 35; i++ {
		require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q", Key: fmt.Sprintf("key-%d", i)}))
	}
	ds, err := b.Lease(ctx, "q", 5, 24*time.Hour)
	require.NoError(t, err)
	require.Len(t, ds, 5)
	advance(2 * time.Hour)
	for _, d := range ds {
		require.NoError(t, b.Ack(ctx, d))
	}
	require.Equal(t, int64(20), forgotten(), "the keys dropped had ended their window")
}
