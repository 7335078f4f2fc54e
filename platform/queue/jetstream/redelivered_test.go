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

// TestDeadLetteredTaskIsNotRunAgain: a task whose dead letter is stored
// but whose work message is not terminated (the term lost, or the process
// gone between the copy and the term) is delivered again by the server
// after AckWait. It must not be handed out to run again (it could
// succeed, its source be told succeeded and its key marked succeeded,
// while its dead letter stays listed for an operator to re-drive): it is
// finished as the dead letter it is. The watcher is told once (the pool,
// whose DeadLetter failed, told the source nothing), the dead letter stays
// the one stored, the key is recorded as dead-lettered, and the queue
// empties. A retried task delivered again while the queue has a dead
// letter of another task is handed out as usual. The copy is found also
// when it is not the queue's newest dead letter. On an embedded server,
// and on PLBA_TEST_NATS_URL's when set.
func TestDeadLetteredTaskIsNotRunAgain(t *testing.T) {
	t.Parallel()
	cfg := jetstream.Config{AckWait: 500 * time.Millisecond}
	onEachServer(t, cfg, deadLetteredNotRunAgain)
}

func deadLetteredNotRunAgain(t *testing.T, config func(t *testing.T) jetstream.Config) {
	cases := []struct {
		name string
		tk   *task.Task
		// dead stores d's dead letter and leaves the work message
		// unterminated.
		dead func(t *testing.T, b *jetstream.Backend, d *queue.Delivery)
	}{
		{"term fails", &task.Task{ID: "keyed", Kind: "k"}, func(t *testing.T, b *jetstream.Backend, d *queue.Delivery) {
			jetstream.LoseTerm(d)
			require.Error(t, b.DeadLetter(t.Context(), d, "boom"), "the term did not go out")
		}},
		{"crash before the term", &task.Task{Kind: "k"}, func(t *testing.T, b *jetstream.Backend, d *queue.Delivery) {
			require.NoError(t, jetstream.StoreDeadOnly(t.Context(), b, d, "boom"))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b := openBackend(t, config(t))
			var (
				mu   sync.Mutex
				told []queue.DeadLetter
			)
			b.WatchDead(func(dl queue.DeadLetter) {
				mu.Lock()
				told = append(told, dl)
				mu.Unlock()
			})
			const qn = "again"
			tk := c.tk
			tk.Queue = qn
			require.NoError(t, b.Enqueue(ctx, tk, &task.Task{ID: "other", Kind: "k", Queue: qn},
				&task.Task{ID: "retried", Kind: "k", Queue: qn}))
			// Leased for no longer than AckWait: nothing keeps the lease of
			// the delivery left unsettled.
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			ds, err := b.Lease(lctx, qn, 1, 100*time.Millisecond)
			cancel()
			require.NoError(t, err)
			d := ds[0]
			require.Equal(t, tk.ID, d.Task.ID)
			c.dead(t, b, d)
			// Another task is dead-lettered after it: the newest dead
			// letter of the queue is not its copy.
			o := jetstream.LeaseOne(t, b, qn)
			require.Equal(t, "other", o.Task.ID)
			require.NoError(t, b.DeadLetter(ctx, o, "other"))
			// The last task fails once and is retried: delivered again
			// while the queue has dead letters, it runs.
			r := jetstream.LeaseOne(t, b, qn)
			require.Equal(t, "retried", r.Task.ID)
			require.NoError(t, b.Retry(ctx, r, time.Now()))
			r = jetstream.LeaseOne(t, b, qn)
			require.Equal(t, "retried", r.Task.ID)
			require.Equal(t, 2, r.Task.Attempt)
			require.NoError(t, b.Ack(ctx, r))

			// The dead-lettered task comes back after AckWait: it is not
			// handed out, and its work message goes.
			for deadline := time.Now().Add(10 * time.Second); ; {
				require.True(t, time.Now().Before(deadline), "the work message of the dead letter is still queued")
				lctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				ds, err := b.Lease(lctx, qn, 1, 100*time.Millisecond)
				cancel()
				if err == nil {
					require.Failf(t, "a dead-lettered task was delivered again", "task %s attempt %d", ds[0].Task.ID, ds[0].Task.Attempt)
				}
				require.ErrorIs(t, err, context.DeadlineExceeded)
				st, err := b.Stats(ctx, qn)
				require.NoError(t, err)
				if st.Ready+st.InFlight+st.Delayed == 0 {
					break
				}
			}

			dead, err := b.ListDead(ctx, qn, 0)
			require.NoError(t, err)
			require.Len(t, dead, 2)
			require.Equal(t, tk.ID, dead[0].Task.ID)
			require.Equal(t, "other", dead[1].Task.ID)
			mu.Lock()
			require.Len(t, told, 1, "the watcher is told of the dead letter once")
			require.Equal(t, tk.ID, told[0].Task.ID)
			require.Equal(t, dead[0].Reason, told[0].Reason)
			require.True(t, dead[0].At.Equal(told[0].At))
			require.Equal(t, 1, told[0].Task.Attempt, "the attempt it was dead-lettered on")
			mu.Unlock()
			if m := jetstream.DoneMarker(t, b, d); tk.ID == "keyed" {
				require.Equal(t, "dead_lettered\nboom", m, "the key is recorded as dead-lettered")
			}
		})
	}
}
