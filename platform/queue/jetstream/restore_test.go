package jetstream_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
)

// healQueues are the queues the store tests use: one per check, each set
// up (and used) before the server loses its streams.
var healQueues = []string{"heal-ack", "heal-retry", "heal-expire"}

// storeTest is a backend reading advisories, the dead letters its
// watcher was told of, and the server's URL.
type storeTest struct {
	b    *jetstream.Backend
	told chan queue.DeadLetter
	url  string
}

// openStoreTest opens a backend on url (MaxDeliver 2, AckWait 1 s),
// registers a dead-letter watcher and sets every heal queue up by
// running one task through it.
func openStoreTest(t *testing.T, url string) *storeTest {
	t.Helper()
	ctx := t.Context()
	b := openBackend(t, jetstream.Config{URL: url, AckWait: time.Second, MaxDeliver: 2, PublishTimeout: 5 * time.Second})
	st := &storeTest{b: b, told: make(chan queue.DeadLetter, 16), url: url}
	b.WatchDead(func(dl queue.DeadLetter) { st.told <- dl })
	for _, q := range healQueues {
		require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: q, Key: "warm-" + q}))
		d := jetstream.LeaseOne(t, b, q)
		require.NoError(t, b.Ack(ctx, d))
	}
	return st
}

// requireHealed checks that the backend heals when lose makes the server
// lose the backend's streams: a keyed task's Ack really acks it and
// remembers its key, a Retry on the last delivery and a lease expiring
// on the last delivery both reach the dead letter. With leasedBefore,
// the Ack and the Retry settle deliveries leased before the loss.
func requireHealed(t *testing.T, st *storeTest, lose func(), leasedBefore bool) {
	t.Helper()
	ctx := t.Context()
	b := st.b
	lease := func() (acked, last *queue.Delivery) {
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "acked", Kind: "k", Queue: "heal-ack", Key: "key-acked"},
			&task.Task{ID: "retried", Kind: "k", Queue: "heal-retry", Key: "key-retried"}))
		acked = jetstream.LeaseOne(t, b, "heal-ack")
		require.Equal(t, "acked", acked.Task.ID)
		d := jetstream.LeaseOne(t, b, "heal-retry")
		require.NoError(t, b.Retry(ctx, d, time.Now()))
		last = jetstream.LeaseOne(t, b, "heal-retry")
		require.Equal(t, 2, last.Task.Attempt)
		return acked, last
	}
	var acked, last *queue.Delivery
	if leasedBefore {
		acked, last = lease()
		lose()
	} else {
		lose()
		acked, last = lease()
	}
	nc, err := nats.Connect(st.url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)

	// Ack: acked for real (gone from the work stream, not delivered
	// again after AckWait), its key remembered.
	require.NoError(t, b.Ack(ctx, acked))
	waitFor(t, 10*time.Second, "the acked task to leave its work stream", func() bool {
		s, err := js.Stream(ctx, "PLBA_Q_heal-ack")
		return err == nil && s.CachedInfo().State.Msgs == 0
	})
	lctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond) // past AckWait
	ds, err := b.Lease(lctx, "heal-ack", 1, time.Second)
	cancel()
	require.Empty(t, ds, "the acked task is delivered again: its ack was never sent (err %v)", err)
	again := &task.Task{Kind: "k", Queue: "heal-ack", Key: "key-acked"}
	require.NoError(t, b.Enqueue(ctx, again))
	o, _, ok := task.Finished(again)
	require.True(t, ok, "the acked task's key is remembered")
	require.Equal(t, task.Succeeded, o)

	// Retry on the last delivery: dead-lettered.
	require.ErrorIs(t, b.Retry(ctx, last, time.Now()), queue.ErrDeadLettered)
	dead, err := b.ListDead(ctx, "heal-retry", 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "retried", dead[0].Task.ID)

	// A lease expiring on the last delivery: dead-lettered through the
	// max-deliveries advisory.
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "expired", Kind: "k", Queue: "heal-expire"}))
	requireExhaustedDead(t, st)
}

// requireExhaustedDead lets the leases of the task "expired" of queue
// heal-expire expire on both its deliveries and waits for its dead
// letter, told to the watcher and listed.
func requireExhaustedDead(t *testing.T, st *storeTest) {
	t.Helper()
	ctx := t.Context()
	for attempt := 1; attempt <= 2; attempt++ {
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		ds, err := st.b.Lease(lctx, "heal-expire", 1, 200*time.Millisecond)
		cancel()
		require.NoError(t, err)
		require.Len(t, ds, 1)
		require.Equal(t, attempt, ds[0].Task.Attempt) // left unsettled
	}
	select {
	case dl := <-st.told:
		require.Equal(t, "expired", dl.Task.ID)
	case <-time.After(20 * time.Second):
		t.Fatal("the task exhausted by expired leases was never dead-lettered")
	}
	dead, err := st.b.ListDead(ctx, "heal-expire", 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "expired", dead[0].Task.ID)
}

// TestServerThatLostItsStoreIsSetUpAgain: the server the backend talks
// to is restarted on the same address without its store while the
// backend stays open. The backend reconnects and sets its streams up
// again: acks, dead letters and the advisory path work as before.
func TestServerThatLostItsStoreIsSetUpAgain(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	_, port, err := net.SplitHostPort(srv.NATS().Addr().String())
	require.NoError(t, err)
	st := openStoreTest(t, srv.ClientURL())

	requireHealed(t, st, func() {
		require.NoError(t, srv.Shutdown(t.Context()))
		waitFor(t, 10*time.Second, "disconnect", func() bool { return !st.b.Status().Connected })
		startServer(t, t.TempDir(), "127.0.0.1:"+port, nil) // an empty store
		waitFor(t, 20*time.Second, "reconnect", func() bool {
			return st.b.Check(t.Context()) == nil && st.b.Status().Reconnects >= 1
		})
		// The reconnect alone sets the backend's streams up again, before
		// any call needs them.
		nc, err := nats.Connect(st.url)
		require.NoError(t, err)
		defer nc.Close()
		js, err := njs.New(nc)
		require.NoError(t, err)
		for _, name := range []string{"PLBA_DONE", "PLBA_DEAD", "PLBA_ADV_plba-workers", "PLBA_Q_heal-expire"} {
			waitFor(t, 10*time.Second, "stream "+name+" set up again", func() bool {
				_, err := js.Stream(t.Context(), name)
				return err == nil
			})
		}
	}, false)
}

// TestDeletedStreamsAreSetUpAgain: the finished-key and dead-letter
// streams are deleted while the backend is connected (no reconnect tells
// it) and holds leased tasks; the first record or dead letter that finds
// no stream sets them up again and is stored: the Ack acks, the Retry on
// the last delivery dead-letters.
func TestDeletedStreamsAreSetUpAgain(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	st := openStoreTest(t, srv.ClientURL())

	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	requireHealed(t, st, func() {
		for _, name := range []string{"PLBA_DONE", "PLBA_DEAD"} {
			require.NoError(t, js.DeleteStream(t.Context(), name), fmt.Sprint("delete ", name))
		}
	}, true)
}

// TestEnqueueSetsADeletedDoneStreamUpAgain: an Enqueue of a keyed task
// looks its key up in the finished-key stream; with that stream deleted
// the lookup found no stream and every Enqueue of a keyed task failed.
// It sets the stream up again and stores the task.
func TestEnqueueSetsADeletedDoneStreamUpAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	b := openBackend(t, jetstream.Config{URL: srv.ClientURL(), AckWait: time.Second, PublishTimeout: 5 * time.Second})
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "keyed", Key: "first"}))

	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	require.NoError(t, js.DeleteStream(ctx, "PLBA_DONE"))

	tk := &task.Task{ID: "second", Kind: "k", Queue: "keyed", Key: "second"}
	require.NoError(t, b.Enqueue(ctx, tk))
	_, err = js.Stream(ctx, "PLBA_DONE")
	require.NoError(t, err, "the finished-key stream is set up again")
	seen := map[string]bool{}
	for len(seen) < 2 {
		d := jetstream.LeaseOne(t, b, "keyed")
		seen[d.Task.Key] = true
		require.NoError(t, b.Ack(ctx, d))
	}
	// Each ack goes out once its record is stored.
	waitFor(t, 10*time.Second, "the acked tasks to leave their work stream", func() bool {
		s, err := js.Stream(ctx, "PLBA_Q_keyed")
		return err == nil && s.CachedInfo().State.Msgs == 0
	})
	again := &task.Task{Kind: "k", Queue: "keyed", Key: "second"}
	require.NoError(t, b.Enqueue(ctx, again))
	_, _, ok := task.Finished(again)
	require.True(t, ok, "the key acked after the stream came back is remembered")
}

// TestDeletedAdvisoryConsumerIsSetUpAgain: the consumer of the advisory
// stream is deleted while the backend reads it (its reading ends); it is
// set up again and read anew, so a task whose lease expires on its last
// delivery still reaches the dead letter.
func TestDeletedAdvisoryConsumerIsSetUpAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	st := openStoreTest(t, srv.ClientURL())
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	require.NoError(t, js.DeleteConsumer(ctx, "PLBA_ADV_plba-workers", "plba-workers"))

	require.NoError(t, st.b.Enqueue(ctx, &task.Task{ID: "expired", Kind: "k", Queue: "heal-expire"}))
	requireExhaustedDead(t, st)
}

// TestRedriveSetsADeletedWorkStreamUpAgain: a dead letter is re-driven
// into a queue whose work stream was deleted on the server after this
// backend set it up (no puller of its own to notice); the publish that
// no stream answered sets the queue up again, as Enqueue's does, and the
// task is queued and delivered. Before, Redrive failed.
func TestRedriveSetsADeletedWorkStreamUpAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	cfg := jetstream.Config{URL: srv.ClientURL(), AckWait: time.Second, PublishTimeout: 5 * time.Second}

	// Another process dead-letters the task, then stops.
	other := openBackend(t, cfg)
	require.NoError(t, other.Enqueue(ctx, &task.Task{ID: "redriven", Kind: "k", Queue: "redrive-gone", Key: "key-redriven"}))
	d := jetstream.LeaseOne(t, other, "redrive-gone")
	require.NoError(t, other.DeadLetter(ctx, d, "broken"))
	require.NoError(t, other.Close(ctx))

	b := openBackend(t, cfg)
	require.NoError(t, b.Declare(ctx, "redrive-gone"))
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	require.NoError(t, js.DeleteStream(ctx, "PLBA_Q_redrive-gone"))

	n, err := b.Redrive(ctx, "redrive-gone")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = js.Stream(ctx, "PLBA_Q_redrive-gone")
	require.NoError(t, err, "the work stream is set up again")
	dead, err := b.ListDead(ctx, "redrive-gone", 0)
	require.NoError(t, err)
	require.Empty(t, dead)
	got := jetstream.LeaseOne(t, b, "redrive-gone")
	require.Equal(t, "redriven", got.Task.ID)
	require.Equal(t, 1, got.Task.Attempt)
	require.NoError(t, b.Ack(ctx, got))
}

// TestReadsSetDeletedStreamsUpAgain: reads by stream name that find the
// dead-letter or finished-key stream deleted on the server (no reconnect
// tells the backend) ask for a round of setting the streams up again,
// wait for it and read once more: ListDead lists no dead letters (the
// stream is empty, set up again) and FindTasks by key finds nothing
// finished. Before, both failed with "stream not found" and nothing set
// the streams up until a write happened to need them.
func TestReadsSetDeletedStreamsUpAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", nil)
	b := openBackend(t, jetstream.Config{URL: srv.ClientURL(), AckWait: time.Second, PublishTimeout: 5 * time.Second})
	require.NoError(t, b.Declare(ctx, "reads"))
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)

	require.NoError(t, js.DeleteStream(ctx, "PLBA_DEAD"))
	dead, err := b.ListDead(ctx, "reads", 0)
	require.NoError(t, err)
	require.Empty(t, dead)
	_, err = js.Stream(ctx, "PLBA_DEAD")
	require.NoError(t, err, "the dead-letter stream is set up again")
	dead, err = b.ListDead(ctx, "reads", 0)
	require.NoError(t, err)
	require.Empty(t, dead)

	require.NoError(t, js.DeleteStream(ctx, "PLBA_DONE"))
	found, err := b.FindTasks(ctx, "reads", queue.TaskLookup{Key: "never"})
	require.NoError(t, err)
	require.Empty(t, found.Found)
	_, err = js.Stream(ctx, "PLBA_DONE")
	require.NoError(t, err, "the finished-key stream is set up again")
}
