package memory_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// TestSameTaskEnqueuedAgainWhileLeased: the very task enqueued again
// while a delivery of it runs is neither stored twice nor marked (see
// queue.Producer), and the backend, which keeps that *task.Task and shares
// its headers with the deliveries, does not write to it: the handler
// reading the delivery's headers meanwhile is no data race (run with
// -race). Enqueue's Task.Prepare used to delete the duplicate marks from
// the stored task's headers even when it carried none, a write to the map
// the handler was reading.
func TestSameTaskEnqueuedAgainWhileLeased(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{})
	ctx := context.Background()
	tk := &task.Task{Kind: "k", Queue: "q", Headers: map[string]string{"x": "1"}}
	require.NoError(t, b.Enqueue(ctx, tk))
	ds, err := b.Lease(ctx, "q", 1, time.Minute)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 1000 {
			_ = ds[0].Task.Header("x")
		}
	})
	for range 100 {
		require.NoError(t, b.Enqueue(ctx, tk))
		require.False(t, task.Dropped(tk), "the same task is not marked")
	}
	wg.Wait()
	st, err := b.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, int64(0), st.Ready)
	require.Equal(t, int64(1), st.InFlight)
	require.Equal(t, "1", ds[0].Task.Header("x"))
	require.NoError(t, b.Ack(ctx, ds[0]))
}

// TestSameTaskMarkedAgainWhileALateHandlerReads: the very task whose
// lease ran out, while its handler still reads the delivery's headers,
// and which then finished (dead-lettered by the lease's expiry, or acked
// on its next delivery), enqueued again is a duplicate of a finished task
// and marked so (task.Finished on the task passed to Enqueue; task.Held
// when another task took its key since), but the
// mark is not written into the headers map the late handler reads (run
// with -race): markDup wrote it into the task's own map, which the
// backend had shared with every delivery of the task.
func TestSameTaskMarkedAgainWhileALateHandlerReads(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		opts   memory.Options
		finish func(t *testing.T, b *memory.Backend, c *clock)
		want   task.Outcome
		reason string
		held   string // the holder's id, when the task is held instead
	}{{
		name: "dead-lettered by its lease's expiry",
		opts: memory.Options{MaxDeliveries: 1},
		finish: func(t *testing.T, b *memory.Backend, c *clock) {
			c.add(2 * time.Minute)
			st, err := b.Stats(context.Background(), "q")
			require.NoError(t, err)
			require.Equal(t, int64(1), st.Dead)
		},
		want:   task.DeadLettered,
		reason: "lease expired 1 times",
	}, {
		name: "acked on its next delivery",
		opts: memory.Options{DedupWindow: time.Hour},
		finish: func(t *testing.T, b *memory.Backend, c *clock) {
			ctx := context.Background()
			c.add(2 * time.Minute)
			ds, err := b.Lease(ctx, "q", 1, time.Minute)
			require.NoError(t, err)
			require.Equal(t, 2, ds[0].Task.Attempt)
			require.NoError(t, b.Ack(ctx, ds[0]))
		},
		want: task.Succeeded,
	}, {
		name: "acked, its key taken by another task since",
		opts: memory.Options{},
		finish: func(t *testing.T, b *memory.Backend, c *clock) {
			ctx := context.Background()
			c.add(2 * time.Minute)
			ds, err := b.Lease(ctx, "q", 1, time.Minute)
			require.NoError(t, err)
			require.NoError(t, b.Ack(ctx, ds[0]))
			require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "other", Kind: "k", Queue: "q", Key: "order-1"}))
		},
		held: "other",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &clock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
			tc.opts.Now = c.Now
			b := newBackend(t, tc.opts)
			ctx := context.Background()
			tk := &task.Task{Kind: "k", Queue: "q", Key: "order-1", Headers: map[string]string{"x": "1"}}
			require.NoError(t, b.Enqueue(ctx, tk))
			ds, err := b.Lease(ctx, "q", 1, time.Minute)
			require.NoError(t, err)
			late := ds[0]
			stop, reading := make(chan struct{}), make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				_ = late.Task.Header("x")
				close(reading)
				for {
					select {
					case <-stop:
						return
					default:
						_ = late.Task.Header("x")
					}
				}
			})
			<-reading
			tc.finish(t, b, c)
			for range 100 {
				require.NoError(t, b.Enqueue(ctx, tk))
				by, held := task.Held(tk)
				o, reason, ok := task.Finished(tk)
				if tc.held != "" {
					require.True(t, held, "the task passed to Enqueue is marked held")
					require.Equal(t, tc.held, by)
					require.False(t, ok)
					continue
				}
				require.True(t, ok, "the task passed to Enqueue is marked finished")
				require.Equal(t, tc.want, o)
				require.Equal(t, tc.reason, reason)
				require.False(t, held)
			}
			close(stop)
			wg.Wait()
			require.False(t, task.Dropped(late.Task), "the late handler's delivery carries no mark")
			require.Equal(t, "1", late.Task.Header("x"))
			dead, err := b.ListDead(ctx, "q", 0)
			require.NoError(t, err)
			for _, dl := range dead {
				_, _, ok := task.Finished(dl.Task)
				require.False(t, ok, "the dead letter carries no mark")
			}
		})
	}
}
