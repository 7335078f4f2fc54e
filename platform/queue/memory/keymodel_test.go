package memory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// TestKeysAgainstAModel: keys producers give that are written as this
// process's generated ids (made by task.NewID, written by hand with its
// prefix and any counter, the id of a keyless task stored or done, the
// id the next keyless task will get), look-alikes that are not (another
// prefix, upper case, one digit more) and others de-duplicate as a plain
// map of producers' keys says, through enqueues, acks and the window's
// end, in random order; a keyless task (its key generated, another
// space) is always stored, whatever producers' keys are written as its
// id; once every task ended and the window passed, the index holds
// nothing.
func TestKeysAgainstAModel(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Unix(1_000_000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	const window = time.Minute
	b := New(Options{DedupWindow: window, Now: clock, Capacity: 1 << 20})
	defer func() {
		// Bounded: a failed check leaves deliveries unsettled.
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = b.Close(cctx)
	}()
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
	var ids []string // keyless tasks' ids, and the id that follows each
	next := func(id string) string {
		n, err := strconv.ParseUint(id[16:], 16, 64)
		require.NoError(t, err)
		return fmt.Sprintf("%s%016x", id[:16], n+1)
	}
	ids = append(ids, next(task.NewID()))
	rng := rand.New(rand.NewPCG(1, 2))
	live := map[string]bool{}
	done := map[string]int64{} // until, in clock nanoseconds
	var leased []*queue.Delivery
	heldN, finN, madeN, keyless, stored, acked := 0, 0, 0, 0, 0, 0
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
			switch rng.IntN(4) {
			case 0: // the latest keyless task's id, or the next one's
				k = ids[len(ids)-1-rng.IntN(min(2, len(ids)))]
			case 1:
				k = ids[rng.IntN(len(ids))]
			}
			tk := &task.Task{ID: "p" + strconv.Itoa(i), Kind: "k", Queue: "q", Key: k} // its id given: the ids Prepare makes are the keyless tasks'
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
				stored++
			}
		case op < 6:
			tk := &task.Task{Kind: "k", Queue: "q"} // a fresh generated key
			require.NoError(t, b.Enqueue(ctx, tk))
			require.False(t, task.Dropped(tk), "%d: a keyless task is stored", i)
			require.False(t, task.StoredAgain(tk), "%d: a keyless task is stored", i)
			if live[tk.ID] || done[tk.ID] > now.Load() {
				madeN++ // a producer's key written as its id holds or held
			}
			ids = append(ids, tk.ID, next(tk.ID))
			keyless++
		case op < 8:
			leased = append(leased, lease(1+rng.IntN(3))...)
		case op < 9 && len(leased) > 0:
			j := rng.IntN(len(leased))
			d := leased[j]
			leased = append(leased[:j], leased[j+1:]...)
			k := d.Task.Key
			require.NoError(t, b.Ack(ctx, d))
			acked++
			if !d.Task.KeyGenerated() && live[k] {
				delete(live, k)
				done[k] = now.Load() + int64(window)
			}
		default:
			now.Add(int64(time.Duration(rng.IntN(20)) * time.Second))
		}
	}
	require.Positive(t, heldN, "keys held")
	require.Positive(t, finN, "keys refused as finished")
	require.Positive(t, madeN, "keyless tasks whose id a producer's key held")
	t.Logf("keys held %d, refused as finished %d; keyless tasks %d, %d of them with an id a producer's key held", heldN, finN, keyless, madeN)
	for {
		ds := lease(100)
		leased = append(leased, ds...)
		if len(ds) == 0 {
			break
		}
	}
	for _, d := range leased {
		require.NoError(t, b.Ack(ctx, d))
		acked++
	}
	require.Equal(t, stored+keyless, acked, "every task stored was worked once")
	now.Add(int64(2 * window))
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "other"})) // prunes nothing of q
	q := b.queueFor("q")
	q.mu.Lock()
	q.pruneKeys(b.nanos())
	pages, m, done2, live2, spill := q.keys.pages.len(), len(q.keys.pages.m), len(q.keys.done), len(q.keys.live), len(q.keys.spill)
	q.mu.Unlock()
	require.Zero(t, pages+m+done2+live2+spill, fmt.Sprint(pages, m, done2, live2, spill))
}
