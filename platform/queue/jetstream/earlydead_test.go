package jetstream_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestEarlyDeliveryIsNotAnAttempt: a delayed task stored ready (a
// bounded work stream has no message schedules) is delivered before its
// NotBefore and given back with a delayed negative ack; that delivery is
// not an attempt. The leases of its two attempts run out; the server
// stops after its third delivery (MaxDeliver 3) and the MAX_DELIVERIES
// advisory dead-letters it. The attempt of the redelivery after the
// first lease ran out used to count the early delivery (the early count
// was dropped on the first attempt), and the dead letter stored and told
// from the advisory counted it too (3 attempts for 2). The server counts
// the early delivery against MaxDeliver: the task gets 2 attempts of 3
// (docs/jetstream.md, "Max attempts").
func TestEarlyDeliveryIsNotAnAttempt(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openBackend(t, jetstream.Config{Mode: jetstream.ModeEmbedded, Embedded: embedded.Config{StoreDir: t.TempDir()},
		AckWait: 500 * time.Millisecond, MaxDeliver: 3, MaxMsgs: 100})
	var (
		mu   sync.Mutex
		told []queue.DeadLetter
	)
	b.WatchDead(func(dl queue.DeadLetter) {
		mu.Lock()
		told = append(told, dl)
		mu.Unlock()
	})
	const qn = "early"
	due := time.Now().Add(700 * time.Millisecond)
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "later", Kind: "k", Queue: qn, NotBefore: due}))
	for _, attempt := range []int{1, 2} {
		// Leased for no longer than AckWait, left unsettled: the lease runs out.
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ds, err := b.Lease(lctx, qn, 1, 100*time.Millisecond)
		cancel()
		require.NoError(t, err)
		require.Len(t, ds, 1)
		require.False(t, time.Now().Before(due), "handed out before its NotBefore")
		require.Equal(t, attempt, ds[0].Task.Attempt, "the early delivery is not an attempt")
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		n := len(told)
		mu.Unlock()
		st, err := b.Stats(ctx, qn)
		return err == nil && n >= 1 && st.Ready+st.InFlight+st.Delayed == 0
	}, 20*time.Second, 10*time.Millisecond, "the watcher told, the work message gone")
	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, told, 1)
	require.Equal(t, 2, dead[0].Task.Attempt, "the dead letter keeps the attempts used, not the deliveries")
	require.Equal(t, 2, told[0].Task.Attempt, "the watcher is told the attempts used")
}

// TestEarlyDeliveryOnTheOnlyDeliveryIsToldAsSuch: with MaxDeliver 1, a
// delayed task stored ready (a bounded work stream has no message
// schedules) has its one delivery before its NotBefore; the server then
// gives up on it and the advisory dead-letters it without a run (a host
// refuses such a max_deliver; platform.checkQueues). Its dead letter used
// to say that it used one attempt and that its lease expired on the last
// delivery: neither happened. It now says that it never ran, with 0
// attempts, in the store and to the watcher.
func TestEarlyDeliveryOnTheOnlyDeliveryIsToldAsSuch(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openBackend(t, jetstream.Config{Mode: jetstream.ModeEmbedded, Embedded: embedded.Config{StoreDir: t.TempDir()},
		AckWait: 500 * time.Millisecond, MaxDeliver: 1, MaxMsgs: 100})
	told := make(chan queue.DeadLetter, 4)
	b.WatchDead(func(dl queue.DeadLetter) { told <- dl })
	const qn = "early-only"
	due := time.Now().Add(3 * time.Second) // the Lease below comes before it, also on a loaded machine
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "later", Kind: "k", Queue: qn, NotBefore: due}))
	lctx, cancel := context.WithCancel(ctx)
	leased := make(chan []*queue.Delivery, 1)
	go func() {
		ds, _ := b.Lease(lctx, qn, 1, time.Second) // gives the early delivery back; nothing comes after it
		leased <- ds
	}()
	var dl queue.DeadLetter
	select {
	case dl = <-told:
	case <-time.After(20 * time.Second):
		t.Fatal("the watcher was not told")
	}
	cancel()
	require.Empty(t, <-leased, "handed out after the server gave up on it")
	for _, got := range []queue.DeadLetter{dl, onlyDead(t, b, qn)} {
		require.Equal(t, 0, got.Task.Attempt, "no attempt ran")
		require.Contains(t, got.Reason, "never ran")
		require.NotContains(t, got.Reason, "lease expired")
	}
}

func onlyDead(t *testing.T, b *jetstream.Backend, qn string) queue.DeadLetter {
	t.Helper()
	dead, err := b.ListDead(t.Context(), qn, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	return dead[0]
}
