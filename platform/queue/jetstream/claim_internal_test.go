package jetstream

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// twoAtOnce enqueues one keyed task on b and returns two deliveries of its
// message that both believe they hold it, as after a consumer leader
// change (claim.go): the first is leased for one AckWait and not
// renewed, the server delivers the message again, and the first's lease
// is then taken for renewed (its in-progress acks heard by the old
// leader only).
func twoAtOnce(t *testing.T, b *Backend, qn, key string) (first, second *queue.Delivery) {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t-" + key, Kind: "k", Queue: qn, Key: key}))
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ds, err := b.Lease(lctx, qn, 1, b.cfg.AckWait) // not renewed
	require.NoError(t, err)
	require.Len(t, ds, 1)
	first = ds[0]
	second = leaseOne(t, b, qn) // the server's redelivery, after AckWait
	require.Equal(t, first.Task.ID, second.Task.ID)
	require.Equal(t, first.Receipt.(*receipt).seq, second.Receipt.(*receipt).seq, "one message")
	revive(first)
	return first, second
}

// revive makes d's process believe it renewed d's lease just now.
func revive(d *queue.Delivery) {
	r := d.Receipt.(*receipt)
	r.lmu.Lock()
	defer r.lmu.Unlock()
	now := time.Now()
	r.touched, r.leaseEnd, r.ending = now, now.Add(20*time.Second), false
	r.del.LeaseUntil = r.leaseEnd
}

// markerOf returns the outcome key's marker on qn records ("" when it
// has none, or it cannot be read).
func markerOf(t *testing.T, b *Backend, qn, key string) task.Outcome {
	t.Helper()
	q, err := b.queue(qn)
	require.NoError(t, err)
	m, err := b.lastDone(t.Context(), q.doneSubject(key, true))
	if err != nil {
		return ""
	}
	o, _, _ := strings.Cut(string(m.Data), "\n")
	return task.Outcome(o)
}

// TestTwoDeliveriesAtOnceEndInOneOutcome: the server delivers a task again
// while its first delivery still runs (after a consumer leader change),
// and the two deliveries settle differently. One settlement happens,
// the first: the other is reported lost (queue.ErrLeaseLost, its caller
// tells no one), its dead letter deleted again, and the key's marker and
// the dead letters agree. Before, both settlements happened: the source
// was told dead_lettered and succeeded, and a dead letter stayed listed
// for a task whose marker said it succeeded.
func TestTwoDeliveriesAtOnceEndInOneOutcome(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		ackSync bool
	}{{"ack waits for its record", true}, {"ack follows its record", false}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b := openTestBackend(t, Config{AckWait: time.Second, AckSync: c.ackSync, Prefetch: 1, MaxPrefetch: 1,
				Embedded: embedded.Config{StoreDir: t.TempDir()}})

			t.Run("dead letter first", func(t *testing.T) {
				const qn = "dead-first"
				first, second := twoAtOnce(t, b, qn, "order-1")
				require.NoError(t, b.DeadLetter(ctx, second, "refused"))
				err := b.Ack(ctx, first)
				if c.ackSync {
					require.ErrorIs(t, err, queue.ErrLeaseLost, "the ack did not happen")
				} else {
					require.NoError(t, err, "the ack follows its record: its claim is answered later")
				}
				require.Eventually(t, func() bool { return b.Status().ClaimsLost == 1 }, 10*time.Second, 10*time.Millisecond)
				require.Equal(t, task.DeadLettered, markerOf(t, b, qn, "order-1"))
				dead, err := b.ListDead(ctx, qn, 0)
				require.NoError(t, err)
				require.Len(t, dead, 1)
			})

			t.Run("ack first", func(t *testing.T) {
				const qn = "ack-first"
				before := b.Status().ClaimsLost
				first, second := twoAtOnce(t, b, qn, "order-2")
				require.NoError(t, b.Ack(ctx, second))
				require.Eventually(t, func() bool { return markerOf(t, b, qn, "order-2") == task.Succeeded }, 10*time.Second, 10*time.Millisecond)
				err := b.DeadLetter(ctx, first, "refused")
				require.ErrorIs(t, err, queue.ErrLeaseLost, "the dead letter did not happen")
				require.Equal(t, before+1, b.Status().ClaimsLost)
				require.Equal(t, task.Succeeded, markerOf(t, b, qn, "order-2"))
				dead, err := b.ListDead(ctx, qn, 0)
				require.NoError(t, err)
				require.Empty(t, dead, "no dead letter for a task that succeeded")
			})
		})
	}
}

// TestALateClaimReadsTheMarker: a settlement made more than the claim
// window after another delivery of its message settled it (a task that
// ran long) is not de-duplicated by the server any more; it reads the
// key's marker, finds the other's outcome newer than its message, and
// does not happen. Before, it wrote its outcome over the other's.
func TestALateClaimReadsTheMarker(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// Markers kept for 10 minutes, claims de-duplicated for 2 seconds
	// (the server's default is 2 minutes).
	const window = 2 * time.Second
	b := openTestBackend(t, Config{AckWait: time.Second, AckSync: true, DuplicateWindow: 10 * time.Minute, Prefetch: 1, MaxPrefetch: 1,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	cfg := b.done.CachedInfo().Config
	cfg.Duplicates = window
	_, err := b.js.UpdateStream(ctx, cfg)
	require.NoError(t, err)
	b.claimWin.Store(int64(window))
	const qn = "late"
	first, second := twoAtOnce(t, b, qn, "order-3")
	require.NoError(t, b.Ack(ctx, second))
	time.Sleep(2*window + time.Second) // past the claim's duplicate window (the server forgets ids on a timer of that period)
	revive(first)
	err = b.DeadLetter(ctx, first, "refused")
	require.ErrorIs(t, err, queue.ErrLeaseLost, "the dead letter did not happen")
	require.Equal(t, task.Succeeded, markerOf(t, b, qn, "order-3"))
	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Empty(t, dead, "no dead letter for a task that succeeded")
}
