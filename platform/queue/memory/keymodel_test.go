package memory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// TestKeysAgainstAModel: keys that are this process's generated ids (made
// by task.NewID, or written by hand with its prefix and any counter),
// look-alikes that are not (another prefix, upper case, one digit more)
// and others de-duplicate as a plain map of keys says, through enqueues,
// acks and the window's end, in random order; once every task ended and
// the window passed, the index holds nothing.
func TestKeysAgainstAModel(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Unix(1_000_000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	const window = time.Minute
	b := New(Options{DedupWindow: window, Now: clock, Capacity: 1 << 20})
	defer b.Close(context.Background())
	ctx := context.Background()

	var keys []string
	for range 6 {
		keys = append(keys, task.NewID())
	}
	id := keys[0]
	keys = append(keys,
		genPrefix+"0000000000000000", genPrefix+"0000000000000001", genPrefix+"ffffffffffffffff",
		genPrefix+"000000000000003f", genPrefix+"0000000000000040",
		strings.ToUpper(id), id[:31]+"g", id+"0", "0123456789abcdef"+id[16:], "order-1", "order-2")
	rng := rand.New(rand.NewPCG(1, 2))
	live := map[string]bool{}
	done := map[string]int64{} // until, in clock nanoseconds
	var leased []*queue.Delivery
	heldN, finN := 0, 0
	lease := func(n int) []*queue.Delivery { // what is ready, without waiting
		c, cancel := context.WithTimeout(ctx, time.Millisecond)
		defer cancel()
		ds, err := b.Lease(c, "q", n, 10000*time.Hour)
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
		}
		return ds
	}
	for i := range 20000 {
		switch op := rng.IntN(10); {
		case op < 5:
			k := keys[rng.IntN(len(keys))]
			tk := &task.Task{Kind: "k", Queue: "q", Key: k}
			require.NoError(t, b.Enqueue(ctx, tk))
			_, held := task.Held(tk)
			_, _, fin := task.Finished(tk)
			switch {
			case live[k]:
				require.True(t, held, "%d: %s is held by its stored task", i, k)
				heldN++
			case done[k] > now.Load():
				require.True(t, fin, "%d: %s finished in its window", i, k)
				finN++
			default:
				require.False(t, task.Dropped(tk), "%d: %s is stored", i, k)
				live[k] = true
			}
		case op < 6:
			require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q"})) // a fresh generated key
		case op < 8:
			leased = append(leased, lease(1+rng.IntN(3))...)
		case op < 9 && len(leased) > 0:
			j := rng.IntN(len(leased))
			d := leased[j]
			leased = append(leased[:j], leased[j+1:]...)
			k := d.Task.Key
			require.NoError(t, b.Ack(ctx, d))
			if live[k] {
				delete(live, k)
				done[k] = now.Load() + int64(window)
			}
		default:
			now.Add(int64(time.Duration(rng.IntN(20)) * time.Second))
		}
	}
	require.Positive(t, heldN, "keys held")
	require.Positive(t, finN, "keys refused as finished")
	for {
		ds := lease(100)
		leased = append(leased, ds...)
		if len(ds) == 0 {
			break
		}
	}
	for _, d := range leased {
		require.NoError(t, b.Ack(ctx, d))
	}
	now.Add(int64(2 * window))
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "other"})) // prunes nothing of q
	q := b.queueFor("q")
	q.mu.Lock()
	q.pruneKeys(b.nanos())
	pages, m, done2, live2, spill := q.keys.pages.len(), len(q.keys.pages.m), len(q.keys.done), len(q.keys.live), len(q.keys.spill)
	q.mu.Unlock()
	require.Zero(t, pages+m+done2+live2+spill, fmt.Sprint(pages, m, done2, live2, spill))
}
