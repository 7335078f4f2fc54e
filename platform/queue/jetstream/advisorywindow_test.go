package jetstream_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
)

// TestExhaustedTaskRetriedPastTheWindowIsDeadLetteredOnce: the handling of
// a max-deliveries advisory stores the dead letter, then fails (here the
// watcher takes longer than the publish timeout, so the work message
// cannot be deleted in time) and is tried again after the dead-letter
// stream's duplicate window: the task still has exactly one dead letter,
// and the watcher is told it once, as it was stored (the process that
// told it does not tell it again). The copy's Nats-Msg-Id de-duplicates
// it only within the window; the retry used to store a second dead letter
// of the same task. On an embedded server, and on PLBA_TEST_NATS_URL's
// when set.
func TestExhaustedTaskRetriedPastTheWindowIsDeadLetteredOnce(t *testing.T) {
	t.Parallel()
	const window = time.Second
	cfg := jetstream.Config{MaxDeliver: 1, AckWait: 500 * time.Millisecond, DuplicateWindow: window,
		PublishTimeout: 500 * time.Millisecond}
	onEachServer(t, cfg, func(t *testing.T, config func(t *testing.T) jetstream.Config) {
		exhaustedPastTheWindow(t, config(t), window)
	})
}

func exhaustedPastTheWindow(t *testing.T, cfg jetstream.Config, window time.Duration) {
	ctx := t.Context()
	b := openBackend(t, cfg)
	var (
		mu   sync.Mutex
		told []queue.DeadLetter
	)
	b.WatchDead(func(dl queue.DeadLetter) {
		mu.Lock()
		told = append(told, dl)
		first := len(told) == 1
		mu.Unlock()
		if first {
			// A slow watcher: the advisory's handling outlives its publish
			// timeout, fails, and is tried again past the window.
			time.Sleep(window + window/2)
		}
	})
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "slow", Kind: "k", Queue: "win"}))
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	ds, err := b.Lease(lctx, "win", 1, 100*time.Millisecond)
	cancel()
	require.NoError(t, err)
	require.Len(t, ds, 1) // never settled: its lease ends on its last delivery

	// The first handling cannot delete the work message (its time ran
	// out in the watcher): the queue empties only once it was handled
	// again.
	require.Eventually(t, func() bool {
		mu.Lock()
		n := len(told)
		mu.Unlock()
		st, err := b.Stats(ctx, "win")
		return err == nil && n >= 1 && st.Ready+st.InFlight+st.Delayed == 0
	}, 30*time.Second, 10*time.Millisecond, "the advisory handled again, the work message deleted")
	dead, err := b.ListDead(ctx, "win", 0)
	require.NoError(t, err)
	require.Len(t, dead, 1, "one dead letter for one exhausted task")
	require.Equal(t, "slow", dead[0].Task.ID)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, told, 1, "told once")
	last := told[0]
	require.Equal(t, "slow", last.Task.ID)
	require.Equal(t, dead[0].Reason, last.Reason)
	require.True(t, dead[0].At.Equal(last.At), "told at %s, stored at %s", last.At, dead[0].At)
}
