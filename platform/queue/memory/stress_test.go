package memory_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// TestStressSettlementsAreExclusive has consumers with leases a few
// milliseconds long settle, extend and give back deliveries at random
// while their leases expire, MaxDeliveries dead-letters tasks and dead
// letters are re-driven and purged: no delivery settles twice, no
// settlement of a delivery whose lease ended takes effect, an acked task
// is never delivered again, and at the end the queue's counts are what
// happened.
func TestStressSettlementsAreExclusive(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{MaxDeliveries: 3, DedupWindow: time.Minute})
	ctx := context.Background()
	const n = 400
	for i := range n {
		require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q", Key: fmt.Sprintf("k%d", i), ID: fmt.Sprintf("t%d", i)}))
	}
	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		ackedBy  = map[string]*queue.Delivery{}
		settled  = map[*queue.Delivery]string{}
		watched  = map[string]int{}
		deadBy   = map[string]int{} // DeadLetter calls that went through
		problems []string
	)
	b.WatchDead(func(dl queue.DeadLetter) {
		mu.Lock()
		watched[dl.Task.ID]++
		mu.Unlock()
	})
	note := func(d *queue.Delivery, op string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if !errors.Is(err, queue.ErrLeaseLost) {
				problems = append(problems, fmt.Sprintf("%s %s: %v", op, d.Task.ID, err))
			}
			return
		}
		if op == "extend" {
			if prev, ok := settled[d]; ok {
				problems = append(problems, fmt.Sprintf("extend of %s after its %s", d.Task.ID, prev))
			}
			return
		}
		if prev, ok := settled[d]; ok {
			problems = append(problems, fmt.Sprintf("%s of %s (attempt %d) after its %s", op, d.Task.ID, d.Task.Attempt, prev))
		}
		settled[d] = op
		switch op {
		case "ack":
			if acked[d.Task.ID] {
				problems = append(problems, "second ack of "+d.Task.ID)
			}
			acked[d.Task.ID], ackedBy[d.Task.ID] = true, d
		case "dead":
			deadBy[d.Task.ID]++
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				lctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
				ds, err := b.Lease(lctx, "q", 1+rand.IntN(3), time.Duration(1+rand.IntN(4))*time.Millisecond)
				cancel()
				if err != nil {
					continue
				}
				mu.Lock()
				for _, d := range ds {
					if acked[d.Task.ID] {
						problems = append(problems, fmt.Sprintf("%s delivered again (attempt %d) after its ack", d.Task.ID, d.Task.Attempt))
					}
				}
				mu.Unlock()
				for _, d := range ds {
					time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
					if rand.IntN(3) == 0 {
						note(d, "extend", b.Extend(ctx, d, time.Duration(1+rand.IntN(3))*time.Millisecond))
						time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
					}
					switch rand.IntN(8) {
					case 0, 1, 2:
						note(d, "ack", b.Ack(ctx, d))
					case 3:
						note(d, "retry", b.Retry(ctx, d, time.Now().Add(time.Duration(rand.IntN(3))*time.Millisecond)))
					case 4:
						note(d, "dead", b.DeadLetter(ctx, d, "bad"))
					case 5:
						note(d, "release", b.Release(ctx, d))
					default:
						// Abandoned: its lease ends.
					}
				}
			}
		})
	}
	purged := map[string]bool{}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(rand.IntN(5)) * time.Millisecond):
			}
			switch rand.IntN(3) {
			case 0:
				_, err := b.Redrive(ctx, "q")
				assert.NoError(t, err)
			case 1:
				dl, err := b.ListDead(ctx, "q", 1)
				assert.NoError(t, err)
				if len(dl) > 0 {
					k, err := b.Purge(ctx, "q", dl[0].Task.ID)
					assert.NoError(t, err)
					if k == 1 {
						mu.Lock()
						purged[dl[0].Task.ID] = true
						mu.Unlock()
					}
				}
			default:
				st, err := b.Stats(ctx, "q")
				assert.NoError(t, err)
				if st.Ready < 0 || st.Delayed < 0 || st.InFlight < 0 || st.Dead < 0 {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("stats %+v", st))
					mu.Unlock()
				}
			}
		}
	})
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	// Every lease ends; then the counts are what happened.
	time.Sleep(20 * time.Millisecond)
	st, err := b.Stats(ctx, "q")
	require.NoError(t, err)
	dead, err := b.ListDead(ctx, "q", 0)
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("acked %d, dead %d (watched %d), purged %d, queue %+v", len(acked), len(dead), len(watched), len(purged), st)
	require.Empty(t, problems)
	require.Zero(t, st.InFlight)
	require.Equal(t, int64(len(dead)), st.Dead)
	isDead := map[string]bool{}
	for _, dl := range dead {
		isDead[dl.Task.ID] = true
		require.False(t, acked[dl.Task.ID], "%s acked and dead", dl.Task.ID)
		require.Positive(t, deadBy[dl.Task.ID]+watched[dl.Task.ID], "%s dead without a dead-lettering", dl.Task.ID)
	}
	live := 0
	for i := range n {
		id := fmt.Sprintf("t%d", i)
		if !acked[id] && !isDead[id] && !purged[id] {
			live++
		}
		// The duplicate of each task is told what holds its key.
		dup := &task.Task{Kind: "k", Queue: "q", Key: fmt.Sprintf("k%d", i)}
		require.NoError(t, b.Enqueue(ctx, dup))
		o, _, fin := task.Finished(dup)
		holder, held := task.Held(dup)
		switch {
		case acked[id]:
			require.True(t, fin && o == task.Succeeded, "%s: acked, duplicate marked %v %v", id, o, holder)
		case isDead[id] || purged[id]:
			require.True(t, fin && o == task.DeadLettered, "%s: dead, duplicate marked %v %v", id, o, holder)
		default:
			require.True(t, held && holder == id, "%s: live, duplicate marked %v %v", id, o, holder)
		}
	}
	require.Equal(t, int64(live), st.Ready+st.Delayed, "%+v", st)
}
