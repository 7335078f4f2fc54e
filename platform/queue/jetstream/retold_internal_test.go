package jetstream

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestAdvisoryHandledAgainIsNotToldAgain: a max-deliveries advisory whose
// handling failed after the watcher was told (here the key's marker: the
// handling's time ran out while the watcher took long) is handled again
// by the same process; the watcher is told the dead letter once. It used
// to be told again, and the runtime counted the one dead letter twice
// (plba.task.dead_lettered, the pool's Stats.Dead).
func TestAdvisoryHandledAgainIsNotToldAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const publishTimeout = 300 * time.Millisecond
	b := openTestBackend(t, Config{MaxDeliver: 1, AckWait: 500 * time.Millisecond, PublishTimeout: publishTimeout,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	var mu sync.Mutex
	told := 0
	b.WatchDead(func(queue.DeadLetter) {
		mu.Lock()
		told++
		first := told == 1
		mu.Unlock()
		if first {
			// Outlast the handling's time: what follows the watcher
			// (the key's marker) fails, and the advisory comes back.
			time.Sleep(2 * publishTimeout)
		}
	})
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Kind: "k", Queue: "rt", Key: "key-1"}))
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	ds, err := b.Lease(lctx, "rt", 1, 100*time.Millisecond)
	cancel()
	require.NoError(t, err)
	require.Len(t, ds, 1) // never settled: exhausted after AckWait
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, "rt")
		return err == nil && st.Ready+st.InFlight+st.Delayed == 0 && st.Dead == 1
	}, 30*time.Second, 20*time.Millisecond, "the exhausted task was dead-lettered and left its queue")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, told, "one dead letter, told once")
}

// TestRedeliveredDeadLetterIsToldOnce: a task whose dead letter was
// stored but whose term was lost comes back; the delivery that finds its
// dead letter tells the watcher, and when what follows fails (the key's
// marker: the lookup's time ran out while the watcher took long) the
// message is delivered again and found again: the watcher is told once.
// It used to be told at each such delivery (the one dead letter counted
// again each time).
func TestRedeliveredDeadLetterIsToldOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const publishTimeout = 300 * time.Millisecond
	b := openTestBackend(t, Config{MaxDeliver: 10, AckWait: 500 * time.Millisecond, PublishTimeout: publishTimeout,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	var mu sync.Mutex
	told := 0
	b.WatchDead(func(queue.DeadLetter) {
		mu.Lock()
		told++
		first := told == 1
		mu.Unlock()
		if first {
			time.Sleep(2 * publishTimeout)
		}
	})
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Kind: "k", Queue: "rd", Key: "key-1"}))
	lease := func() []*queue.Delivery {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		ds, _ := b.Lease(lctx, "rd", 1, 100*time.Millisecond)
		return ds
	}
	ds := lease()
	require.Len(t, ds, 1)
	r := ds[0].Receipt.(*receipt)
	r.mu.Lock()
	r.msg = termLost{r.msg}
	r.mu.Unlock()
	require.Error(t, b.DeadLetter(ctx, ds[0], "boom"), "the term did not go out")
	// The message comes back after AckWait; each delivery that finds its
	// dead letter is not handed out.
	handedOut := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		handedOut += len(lease())
		st, err := b.Stats(ctx, "rd")
		if err == nil && st.Ready+st.InFlight+st.Delayed == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the redelivered dead letter was not finished: %+v, %v", st, err)
	}
	require.Zero(t, handedOut, "a dead-lettered task is not handed out")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, told, "one dead letter, told once")
}
