package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// heldBack leases the one task of qname, makes the process believe it
// renewed the lease while the server's AckWait runs out, and waits until
// the server delivered the message again (more than once, while nothing
// renews it): nothing is handed out, an in-progress ack goes out on the
// held delivery, which it returns, and the deliveries held back count as
// no attempt (TestADeliveryHeldBackIsNoAttempt).
func heldBack(t *testing.T, b *Backend, qname string) *queue.Delivery {
	t.Helper()
	ackWait := b.cfg.AckWait
	ds, err := leaseWaiting(t, b, qname, 20*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	d := ds[0]
	require.Equal(t, 1, d.Task.Attempt)
	wpi := believeRenewed(d, time.Now().Add(6*time.Second), false)
	again, err := leaseWaiting(t, b, qname, 3*ackWait)
	require.ErrorIs(t, err, context.DeadlineExceeded, "nothing handed out while the first delivery is held")
	require.Empty(t, again)
	require.Positive(t, wpi.Load(), "the server delivered it again, held back")
	return d
}

// TestADeliveryHeldBackIsForgottenWithItsMessage: a delivery held back
// after the held delivery was handed out counts as no attempt of its
// message until the message is settled for good; the held delivery's ack
// or dead letter then forgets it. Its settlement used to forget the count
// only when its own delivery had found one, so that every message
// delivered again while held left its count behind for good (memory, an
// atomic load turned into a lock on every delivery, and past maxEarly
// deliveries held back counted as attempts again).
func TestADeliveryHeldBackIsForgottenWithItsMessage(t *testing.T) {
	t.Parallel()
	for _, op := range []string{"ack", "dead-letter"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b := holdTestBackend(t, time.Second)
			qname := "held-forgotten-" + op
			require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "h1", Kind: "k", Queue: qname}))
			d := heldBack(t, b, qname)
			q := b.knownQueue(qname)
			require.Positive(t, q.earlyOf(d.Receipt.(*receipt).seq), "the delivery held back is counted")
			if op == "ack" {
				require.NoError(t, b.Ack(ctx, d))
			} else {
				require.NoError(t, b.DeadLetter(ctx, d, "given up"))
			}
			q.pmu.Lock()
			defer q.pmu.Unlock()
			require.Empty(t, q.early, "the message settled for good is forgotten")
			require.False(t, q.hasEarly.Load())
		})
	}
}

// TestARetryAfterADeliveryHeldBackOnTheLastDeliveryDeadLetters: with
// max_deliver 2, the server delivers a held message again (its second and
// last delivery), held back; the held delivery's Retry is then on the
// server's last delivery: the task is dead-lettered with the handler's
// reason and the one attempt it ran, and Retry says so
// (queue.ErrDeadLettered). The Retry used to count only the deliveries
// held back before its own was handed out: it sent a negative ack the
// server answered with no delivery, and the max-deliveries advisory
// dead-lettered the task later, its reason that a delivery came before
// the task's not-before time, the handler's lost, while the pool
// reported a retry.
func TestARetryAfterADeliveryHeldBackOnTheLastDeliveryDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{Mode: ModeEmbedded, AckWait: time.Second, MaxDeliver: 2, Prefetch: 4, MaxPrefetch: 4,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qname = "held-last"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "h1", Kind: "k", Queue: qname}))
	ds, err := leaseWaiting(t, b, qname, 20*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	d := ds[0]
	believeRenewed(d, time.Now().Add(6*time.Second), false)
	q, seq := b.knownQueue(qname), d.Receipt.(*receipt).seq
	// Retried as soon as the delivery again is held back: the in-progress
	// ack on the held delivery keeps it an AckWait more, which the
	// process would renew (here it believes it did).
	for deadline := time.Now().Add(20 * time.Second); q.earlyOf(seq) == 0; {
		require.True(t, time.Now().Before(deadline), "the server delivers the message again")
		again, err := leaseWaiting(t, b, qname, 50*time.Millisecond)
		require.ErrorIs(t, err, context.DeadlineExceeded, "nothing handed out while the first delivery is held")
		require.Empty(t, again)
	}
	d.FailReason = "handler failed"
	err = b.Retry(ctx, d, time.Now())
	require.ErrorIs(t, err, queue.ErrDeadLettered, "the server delivers it no more")
	require.Contains(t, d.DeadReason, "handler failed")
	dl, err := b.GetDead(ctx, qname, "h1")
	require.NoError(t, err)
	require.Equal(t, 1, dl.Task.Attempt, "it ran once")
	require.Contains(t, dl.Reason, "handler failed")
}

// TestASettlementWhoseClaimIsLostForgetsTheDeliveriesHeldBack: a delivery
// whose message another delivery (another process's) claimed first ends
// its message for good as well (the winner settles it, or the delivery
// after finds it finished): the deliveries of it this process held back
// are forgotten. They used to stay counted for good.
func TestASettlementWhoseClaimIsLostForgetsTheDeliveriesHeldBack(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := holdTestBackend(t, time.Second)
	const qname = "held-claim-lost"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "h1", Kind: "k", Queue: qname}))
	d := heldBack(t, b, qname)
	r := d.Receipt.(*receipt)
	q := b.knownQueue(qname)
	require.Positive(t, q.earlyOf(r.seq))
	// Another delivery of the message claimed it as a success first.
	_, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: q.doneSubject(r.task.Key, r.keyed),
		Header: nats.Header{hdrMsgID: []string{claimID(r)}}, Data: doneData(task.Succeeded, "")})
	require.NoError(t, err)
	require.ErrorIs(t, b.DeadLetter(ctx, d, "given up"), queue.ErrLeaseLost)
	q.pmu.Lock()
	defer q.pmu.Unlock()
	require.Empty(t, q.early, "the message the winner settles is forgotten")
}

// TestAnExhaustedTaskWhoseDeliveryWasHeldBackSaysSo: a task whose
// delivery again was held back while its delivery ran, and whose lease
// then ran out on the server's last delivery (max_deliver 2), is
// dead-lettered by the max-deliveries advisory with the one attempt it
// ran, and a reason that does not say a delivery came before the task's
// not-before time (it has none): it used to, the only reason it gave.
func TestAnExhaustedTaskWhoseDeliveryWasHeldBackSaysSo(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{Mode: ModeEmbedded, AckWait: time.Second, MaxDeliver: 2, Prefetch: 4, MaxPrefetch: 4,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qname = "held-exhausted"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "h1", Kind: "k", Queue: qname}))
	heldBack(t, b, qname) // nothing renews the held delivery after the in-progress ack on it
	var dl queue.DeadLetter
	require.Eventually(t, func() bool {
		var err error
		dl, err = b.GetDead(ctx, qname, "h1")
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "the max-deliveries advisory dead-letters it")
	require.Equal(t, 1, dl.Task.Attempt, "it ran once")
	require.NotContains(t, dl.Reason, "came before the task's not-before time")
	require.Contains(t, dl.Reason, "delivered again while another delivery of it ran")
}

// TestADeliveryThatRanOutInTheBufferIsNoAttempt: a prefetched delivery
// whose AckWait ran out in the buffer (an outage kept the buffer keeper
// from renewing it) is not handed out, and the server delivers the
// message again: that delivery is the task's first attempt. The one left
// in the buffer used to count, so that a task delivered again and again
// during an outage reached its last attempt having run fewer times.
func TestADeliveryThatRanOutInTheBufferIsNoAttempt(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ackWait = time.Second
	b := holdTestBackend(t, ackWait)
	const qname = "ran-out-buffered"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "b1", Kind: "k", Queue: qname}))
	q, err := b.queue(qname)
	require.NoError(t, err)
	require.NoError(t, q.consuming(ctx, b))
	require.Eventually(t, func() bool {
		q.pmu.Lock()
		defer q.pmu.Unlock()
		if len(q.buf) == 0 {
			return false
		}
		q.buf[0].touched = time.Now().Add(-2 * ackWait) // as if nothing renewed it since
		return true
	}, 20*time.Second, 5*time.Millisecond, "prefetched")
	ds, err := leaseWaiting(t, b, qname, 20*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, uint64(2), ds[0].Receipt.(*receipt).delivered, "delivered again")
	require.Equal(t, 1, ds[0].Task.Attempt, "the delivery that ran out in the buffer is no attempt")
	require.NoError(t, b.Ack(ctx, ds[0]))
}

// TestADeliveryHeldBackWhileAnAckWaitsForItsRecordIsForgotten: the server
// delivers a message again while its Ack's ack waits for the finished-key
// record (the delivery is held: holding.go); the delivery is held back,
// and forgotten once the ack went out. It used to stay counted for good:
// the Ack forgot the count when it returned, before the record.
func TestADeliveryHeldBackWhileAnAckWaitsForItsRecordIsForgotten(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ackWait = time.Second
	b, err := New(Params{Config: Config{Mode: ModeEmbedded, AckWait: ackWait, PublishTimeout: 12 * ackWait,
		Embedded: embedded.Config{StoreDir: t.TempDir()}}})
	require.NoError(t, err)
	slow := &slowRecordJS{delay: 3 * ackWait}
	b.faultJS = func(js jetstream.JetStream) jetstream.JetStream {
		slow.JetStream = js
		return slow
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	t.Cleanup(slow.wg.Wait) // before Close
	require.NoError(t, b.Start(ctx))
	const qname = "held-acking"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t", Key: "k-1", Kind: "k", Queue: qname}))
	ds, err := leaseWaiting(t, b, qname, 20*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	d := ds[0]
	believeRenewed(d, time.Now().Add(6*time.Second), false) // the keeper renews nothing: the server delivers it again
	require.NoError(t, b.Ack(ctx, d))
	q, seq := b.knownQueue(qname), d.Receipt.(*receipt).seq
	again, err := leaseWaiting(t, b, qname, 2*ackWait)
	require.Error(t, err, "nothing handed out while the ack waits for its record")
	require.Empty(t, again)
	require.Positive(t, q.earlyOf(seq), "the delivery again was held back")
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, qname)
		return err == nil && st.Ready+st.InFlight+st.Delayed+st.Dead == 0
	}, 20*time.Second, 20*time.Millisecond, "acked once its record was stored")
	q.pmu.Lock()
	defer q.pmu.Unlock()
	require.Empty(t, q.early, "the message acked is forgotten")
}
