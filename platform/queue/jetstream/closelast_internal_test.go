package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestCloseLeavesTheDeadLetterOfALastPrefetchedDeliveryToBeTold: a
// process closes while its prefetch buffer holds a task on the last
// delivery max_deliver allows, in a work stream full with that task
// (max_msgs): its copy is refused, so Close's give-back cannot give it
// back and stores its dead letter. No worker pool settled the delivery,
// and a runtime stops telling sources before it closes its backend: the
// message is left to the server, and another replica, handling its
// MAX_DELIVERIES advisory, tells its dead watcher once, with the reason
// stored. It used to be terminated at Close and told to no one (the log
// said it would be delivered again): no advisory followed, the source
// never heard. On the embedded server and on PLBA_TEST_NATS_URL's.
func TestCloseLeavesTheDeadLetterOfALastPrefetchedDeliveryToBeTold(t *testing.T) {
	t.Parallel()
	closeLeavesLast(t, Config{MaxMsgs: 1, MaxDeliver: 1, AckWait: 3 * time.Second, PublishTimeout: time.Second})
}

// TestCloseLeavesALastDeliveryDeadLetteredOnceWhateverTheWindow: as above,
// with an AckWait longer than the dead-letter stream's duplicate window:
// the MAX_DELIVERIES advisory comes up to an AckWait after Close stored
// the dead letter, when the copy's Nats-Msg-Id no longer de-duplicates
// the advisory's copy. The dead letter stored at Close is still the one
// told, and the only one stored. An advisory younger than half the window
// used to skip the lookup for an earlier copy (one stored for it could
// only be younger than the advisory), and an older one looked only from a
// minute before the advisory: the task was dead-lettered a second time,
// as "lease expired on the last delivery", and told so.
func TestCloseLeavesALastDeliveryDeadLetteredOnceWhateverTheWindow(t *testing.T) {
	t.Parallel()
	closeLeavesLast(t, Config{MaxMsgs: 1, MaxDeliver: 1, AckWait: 3 * time.Second, DuplicateWindow: time.Second,
		PublishTimeout: time.Second})
}

// closeLeavesLast is TestCloseLeavesTheDeadLetterOfALastPrefetchedDeliveryToBeTold
// with cfg.
func closeLeavesLast(t *testing.T, cfg Config) {
	onBothServers(t, cfg, func(t *testing.T, cfg Config) {
		ctx := t.Context()
		var srv *embedded.Server // the two replicas' server, when embedded
		if cfg.Mode == ModeEmbedded {
			s, err := embedded.Start(ctx, cfg.Embedded, nil)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
			srv = s
		}
		const qname = "closing-last"
		a, err := Open(ctx, Params{Config: cfg, Server: srv})
		require.NoError(t, err)
		require.NoError(t, a.Enqueue(ctx, &task.Task{ID: "t", Key: "k-1", Kind: "k", Queue: qname}))
		other, err := Open(ctx, Params{Config: cfg, Server: srv}) // another replica
		require.NoError(t, err)
		t.Cleanup(func() { _ = other.Close(context.Background()) })
		told := make(chan queue.DeadLetter, 4)
		other.WatchDead(func(dl queue.DeadLetter) { told <- dl })

		q := a.knownQueue(qname)
		require.NotNil(t, q)
		require.NoError(t, q.consuming(ctx, a)) // the puller fills the buffer; no Lease takes from it
		require.Eventually(t, func() bool {
			buffered, _ := q.prefetched(time.Now())
			return buffered == 1
		}, 10*time.Second, 5*time.Millisecond, "the task is prefetched")
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		require.NoError(t, a.Close(cctx))
		cancel()

		var dl queue.DeadLetter
		select {
		case dl = <-told:
		case <-time.After(30 * time.Second):
			t.Fatal("the dead letter of the task Close could not give back was told to no one")
		}
		require.Equal(t, "t", dl.Task.ID)
		require.Contains(t, dl.Reason, "given back without a result on the last of 1 deliveries", "its reason as stored at Close")
		require.Zero(t, dl.Task.Attempt, "it never ran")
		dead, err := other.ListDead(ctx, qname, 0)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.Equal(t, dl.Reason, dead[0].Reason)
		require.Eventually(t, func() bool {
			st, err := other.Stats(ctx, qname)
			return err == nil && st.Ready+st.InFlight+st.Delayed == 0 && st.Dead == 1
		}, 20*time.Second, 50*time.Millisecond, "the task is its dead letter, nothing else")
		select {
		case again := <-told:
			t.Fatalf("told twice: %+v", again)
		case <-time.After(time.Second):
		}
	})
}
