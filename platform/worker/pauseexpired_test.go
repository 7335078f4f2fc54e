package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// A delivery whose lease ended while it waited in the hand-over buffer,
// given back at Pause, is counted as expired (Stats.Expired), as a worker
// that took it would have skipped it: the backend refuses the give-back
// (queue.ErrLeaseLost) because it takes the task back on its own, as a
// new attempt. Nothing failed, and no Release was refused. (Before: it
// was counted as a failed settlement, SettleFailed.Release, with a
// "lease lost" error as the pool's last error.)
func TestBufferedDeliveryWhoseLeaseEndedGivenBackAtPauseIsCountedAsExpired(t *testing.T) {
	t.Parallel()
	const lease = time.Second
	var (
		mu       sync.Mutex
		attempts = map[string][]int{}
	)
	started, release := make(chan struct{}, 1), make(chan struct{})
	cfg := fast
	cfg.Concurrency, cfg.BatchSize, cfg.Lease = 1, 1, lease
	b := setup(t, cfg, task.Route{Kind: "k", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		mu.Lock()
		attempts[string(tk.Payload)] = append(attempts[string(tk.Payload)], tk.Attempt)
		mu.Unlock()
		if string(tk.Payload) == "long" {
			started <- struct{}{}
			<-release // its own lease is extended
		}
		return nil
	})})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the app stops
	b.enqueue(t, &task.Task{Kind: "k", Payload: []byte("long")}, &task.Task{Kind: "k", Payload: []byte("next")})
	p := b.pool(t, "default")
	within(t, started, "the long handler")
	require.Eventually(t, func() bool {
		st, err := b.be.Stats(context.Background(), "default")
		return err == nil && st.InFlight == 2
	}, 10*time.Second, time.Millisecond, "next leased into the hand-over buffer")
	time.Sleep(lease + lease/2) // next's lease ends in the buffer

	p.Pause() // gives the buffer back: next's lease ended
	st := p.Stats()
	require.Equal(t, int64(1), st.Expired, "next, whose lease ended in the buffer")
	require.Zero(t, st.SettleFailed.Release, "no release was refused that could have succeeded")
	require.Zero(t, st.Returned, "next was not taken back unsettled: its lease had ended")
	require.Empty(t, st.LastError)

	unblock()
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 1 }, 10*time.Second, time.Millisecond)
	p.Resume()
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 2 }, 10*time.Second, time.Millisecond)
	st = p.Stats()
	require.Equal(t, int64(1), st.Expired)
	require.Zero(t, st.SettleFailed.Release)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []int{1}, attempts["long"])
	require.Equal(t, []int{2}, attempts["next"], "run once, on its second delivery")
}
