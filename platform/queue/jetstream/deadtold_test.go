package jetstream_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
)

// TestToldDeadLetterIsTheStoredOne: the watcher is told the dead letter
// that is stored (its reason, time and attempt), the one ListDead shows.
// A task whose DeadLetter stored the copy but lost its term on the last
// allowed delivery is reported by the server's MAX_DELIVERIES advisory;
// the advisory's copy is de-duplicated by the server (the copy's
// Nats-Msg-Id), and the watcher used to be told the advisory's reason and
// time while the dead letter kept the handler's, and the key's marker
// was rewritten with the advisory's reason. A task exhausted after a
// Release was told its attempt while its dead letter kept the deliveries
// of its last message only. A message that is not a task was told with a
// time other than its dead letter's. On an embedded server, and on
// PLBA_TEST_NATS_URL's when set.
func TestToldDeadLetterIsTheStoredOne(t *testing.T) {
	t.Parallel()
	cfg := jetstream.Config{AckWait: 500 * time.Millisecond}
	onEachServer(t, cfg, toldIsStored)
}

func toldIsStored(t *testing.T, config func(t *testing.T) jetstream.Config) {
	cases := []struct {
		name       string
		maxDeliver int
		attempt    int // the dead letter's
		// dead makes one dead letter on queue qn of b, whose watcher is
		// told of it; it returns the key's finished marker, if any.
		dead func(t *testing.T, b *jetstream.Backend, qn string) (marker func() string)
	}{
		{"advisory after a lost term", 1, 1, func(t *testing.T, b *jetstream.Backend, qn string) func() string {
			ctx := t.Context()
			require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "keyed", Kind: "k", Queue: qn}))
			// Leased for no longer than AckWait: nothing keeps the lease
			// of the delivery left unsettled.
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			ds, err := b.Lease(lctx, qn, 1, 100*time.Millisecond)
			cancel()
			require.NoError(t, err)
			d := ds[0]
			jetstream.LoseTerm(d)
			require.Error(t, b.DeadLetter(ctx, d, "boom"), "the term did not go out")
			return func() string { return jetstream.DoneMarker(t, b, d) }
		}},
		{"exhausted after a release", 2, 3, func(t *testing.T, b *jetstream.Backend, qn string) func() string {
			ctx := t.Context()
			require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "released", Kind: "k", Queue: qn}))
			d := jetstream.LeaseOne(t, b, qn)
			require.NoError(t, b.Retry(ctx, d, time.Now()))
			d = jetstream.LeaseOne(t, b, qn)
			require.Equal(t, 2, d.Task.Attempt)
			require.NoError(t, b.Release(ctx, d)) // a new message: its deliveries count from 0
			// Both deliveries of the new message run out their leases
			// (no longer than AckWait), attempts 2 and 3.
			for _, attempt := range []int{2, 3} {
				lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				ds, err := b.Lease(lctx, qn, 1, 100*time.Millisecond)
				cancel()
				require.NoError(t, err)
				require.Equal(t, attempt, ds[0].Task.Attempt)
			}
			return nil
		}},
		{"not a task", 3, 1, func(t *testing.T, b *jetstream.Backend, qn string) func() string {
			ctx := t.Context()
			require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "first", Kind: "k", Queue: qn})) // the queue's stream
			require.NoError(t, b.Ack(ctx, jetstream.LeaseOne(t, b, qn)))
			_, err := b.JetStream().PublishMsg(ctx, &nats.Msg{Subject: jetstream.WorkSubject(t, b, qn), Data: []byte("foreign")})
			require.NoError(t, err)
			lctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			_, err = b.Lease(lctx, qn, 1, time.Second)
			cancel()
			require.ErrorIs(t, err, context.DeadlineExceeded)
			return nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			cfg := config(t)
			cfg.MaxDeliver = c.maxDeliver
			b := openBackend(t, cfg)
			var (
				mu   sync.Mutex
				told []queue.DeadLetter
			)
			b.WatchDead(func(dl queue.DeadLetter) {
				mu.Lock()
				told = append(told, dl)
				mu.Unlock()
			})
			const qn = "told"
			marker := c.dead(t, b, qn)
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
			require.Len(t, told, 1, "the watcher is told of the dead letter once")
			require.Equal(t, dead[0].Task.ID, told[0].Task.ID)
			require.Equal(t, dead[0].Reason, told[0].Reason, "the reason the dead letter keeps")
			require.True(t, dead[0].At.Equal(told[0].At), "told at %s, stored at %s", told[0].At, dead[0].At)
			require.Equal(t, c.attempt, dead[0].Task.Attempt, "the attempt it was dead-lettered on")
			require.Equal(t, c.attempt, told[0].Task.Attempt, "the attempt the dead letter keeps")
			if marker != nil {
				require.Equal(t, "dead_lettered\nboom", marker(), "the key is recorded with the dead letter's reason")
			}
		})
	}
}
