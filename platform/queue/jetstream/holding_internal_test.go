package jetstream

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// watchedMsg counts the in-progress acks sent on a work message, and
// fails its ack when ackFails is set.
type watchedMsg struct {
	jetstream.Msg
	wpi      *atomic.Int32
	ackFails bool
}

func (m watchedMsg) InProgress() error {
	m.wpi.Add(1)
	return m.Msg.InProgress()
}

func (m watchedMsg) Ack() error {
	if m.ackFails {
		return errors.New("nats: connection closed")
	}
	return m.Msg.Ack()
}

// holdTestBackend opens a backend on its own embedded server with an
// AckWait of ackWait.
func holdTestBackend(t *testing.T, ackWait time.Duration) *Backend {
	return openTestBackend(t, Config{Mode: ModeEmbedded, AckWait: ackWait, Prefetch: 4, MaxPrefetch: 4,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
}

// believeRenewed makes the process believe d's lease was renewed at
// touched, as the lease keeper or Extend would (the server heard
// nothing: its AckWait runs out as it was), and watches d's message.
func believeRenewed(d *queue.Delivery, touched time.Time, ackFails bool) *atomic.Int32 {
	r := d.Receipt.(*receipt)
	wpi := new(atomic.Int32)
	r.mu.Lock()
	r.lmu.Lock()
	r.msg = watchedMsg{Msg: r.msg, wpi: wpi, ackFails: ackFails}
	r.touched = touched
	r.leaseEnd = touched.Add(r.ackWait) // not beyond AckWait: the keeper sends nothing
	d.LeaseUntil = r.leaseEnd
	r.lmu.Unlock()
	r.mu.Unlock()
	return wpi
}

// leaseWaiting leases up to 4 deliveries of qname, waiting up to wait.
func leaseWaiting(t *testing.T, b *Backend, qname string, wait time.Duration) ([]*queue.Delivery, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	return b.Lease(ctx, qname, 4, 100*time.Millisecond)
}

// TestASecondDeliveryOfAHeldMessageIsNotHandedOut: the server delivers
// again a message whose delivery this process handed out and holds (as a
// new consumer leader does after a leader change: holding.go; here its
// AckWait runs out while the process believes it renewed the lease).
// That delivery is not handed out, nor settled; an in-progress ack goes
// out on the held delivery instead, and the held delivery's ack settles
// the message for good. The second delivery used to be handed out: the
// task ran twice at once.
func TestASecondDeliveryOfAHeldMessageIsNotHandedOut(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ackWait = time.Second
	b := holdTestBackend(t, ackWait)
	const qname = "held"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "h1", Kind: "k", Queue: qname}))
	d := heldBack(t, b, qname)

	require.NoError(t, b.Ack(ctx, d))
	q := b.knownQueue(qname)
	require.Eventually(t, func() bool {
		info, err := q.workStream().Info(ctx)
		return err == nil && info.State.Msgs == 0
	}, 10*time.Second, 20*time.Millisecond, "the held delivery's ack settled the message")
	after, err := leaseWaiting(t, b, qname, 2*ackWait)
	require.ErrorIs(t, err, context.DeadlineExceeded, "no delivery after the ack")
	require.Empty(t, after)
	b.imu.Lock()
	defer b.imu.Unlock()
	require.Empty(t, q.holding, "the index follows the settlement")
}

// TestADeliveryWhoseLeaseRanOutIsHandedOutAgain: a delivery nothing
// renewed, whose AckWait ran out, is not held: the server's delivery
// again is handed out, and the first delivery can no longer be settled.
func TestADeliveryWhoseLeaseRanOutIsHandedOutAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ackWait = time.Second
	b := holdTestBackend(t, ackWait)
	const qname = "ranout"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "r1", Kind: "k", Queue: qname}))
	ds, err := leaseWaiting(t, b, qname, 20*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	first := ds[0]

	ds, err = leaseWaiting(t, b, qname, 20*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	second := ds[0]
	require.Equal(t, "r1", second.Task.ID)
	require.Equal(t, 2, second.Task.Attempt)
	require.ErrorIs(t, b.Ack(ctx, first), queue.ErrLeaseLost)
	require.NoError(t, b.Ack(ctx, second))
}

// TestADeliveryWhoseSettlementFailedIsHandedOutAgain: a delivery whose
// ack failed is left to the server, and no longer held, although the
// process still believes its lease runs: the server's delivery again is
// handed out.
func TestADeliveryWhoseSettlementFailedIsHandedOutAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ackWait = time.Second
	b := holdTestBackend(t, ackWait)
	const qname = "failed"
	f1 := &task.Task{Kind: "k", Queue: qname} // keyless: its ack goes out alone
	require.NoError(t, b.Enqueue(ctx, f1))
	ds, err := leaseWaiting(t, b, qname, 20*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	first := ds[0]
	believeRenewed(first, time.Now().Add(6*time.Second), true)
	require.Error(t, b.Ack(ctx, first))

	ds, err = leaseWaiting(t, b, qname, 20*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, f1.ID, ds[0].Task.ID)
	require.Equal(t, 2, ds[0].Task.Attempt)
	require.NoError(t, b.Ack(ctx, ds[0]))
}

// TestASecondDeliveryOfABufferedMessageTakesItsPlace: the server delivers
// again a message still in the prefetch buffer (here its AckWait runs
// out while the buffer keeper believes it renewed it): the buffer keeps
// one of the two, the later, and the task is handed out once.
func TestASecondDeliveryOfABufferedMessageTakesItsPlace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ackWait = time.Second
	b := holdTestBackend(t, ackWait)
	const qname = "buffered"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "b1", Kind: "k", Queue: qname}))
	q, err := b.queue(qname)
	require.NoError(t, err)
	require.NoError(t, q.consuming(ctx, b))
	buffered := func() (n int, delivered uint64) {
		q.pmu.Lock()
		defer q.pmu.Unlock()
		for _, in := range q.buf {
			delivered = max(delivered, in.md.NumDelivered)
		}
		return len(q.buf), delivered
	}
	require.Eventually(t, func() bool { n, _ := buffered(); return n == 1 }, 20*time.Second, 5*time.Millisecond, "prefetched")
	q.pmu.Lock()
	q.buf[0].touched = time.Now().Add(6 * time.Second) // the keeper sends nothing for a while
	q.pmu.Unlock()

	require.Eventually(t, func() bool { _, dc := buffered(); return dc >= 2 }, 20*time.Second, 10*time.Millisecond, "delivered again")
	n, _ := buffered()
	require.Equal(t, 1, n, "one of the two deliveries buffered")
	ds, err := leaseWaiting(t, b, qname, 20*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, "b1", ds[0].Task.ID)
	require.NoError(t, b.Ack(ctx, ds[0]))
	after, err := leaseWaiting(t, b, qname, 2*ackWait)
	require.ErrorIs(t, err, context.DeadlineExceeded, "handed out once")
	require.Empty(t, after)
}

// TestAnOldMessageIsKeptInProgressOnArrival: a message stored more than
// half an AckWait before it reaches the buffer is sent an in-progress ack
// at once, so that a consumer leader change soon after does not take its
// delivery for expired (holding.go); a young one is not.
func TestAnOldMessageIsKeptInProgressOnArrival(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ackWait = 4 * time.Second
	b := holdTestBackend(t, ackWait)
	const qname = "old"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "o1", Kind: "k", Queue: qname}))
	q, err := b.queue(qname)
	require.NoError(t, err)
	require.NoError(t, q.ensure(ctx, b))
	fetchOne := func() jetstream.Msg {
		batch, err := q.consumer().Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		var m jetstream.Msg
		for got := range batch.Messages() {
			m = got
		}
		require.NotNil(t, m)
		return m
	}
	m := fetchOne()
	wpi := new(atomic.Int32)
	require.True(t, q.prefetch(b, watchedMsg{Msg: m, wpi: wpi}, time.Now()))
	require.Zero(t, wpi.Load(), "a young message pays nothing")

	q.pmu.Lock()
	q.buf = q.buf[:0]
	q.pmu.Unlock()
	require.True(t, q.prefetch(b, watchedMsg{Msg: m, wpi: wpi}, time.Now().Add(ackWait/2+time.Second)))
	require.EqualValues(t, 1, wpi.Load(), "an old one is kept in progress at once")
	require.NoError(t, m.Ack())
}

// TestADeliveryHeldBackIsNoAttempt: the server delivers again a message
// this process holds, and the delivery is held back (not handed out); the
// held delivery then asks for a retry. The next delivery is the task's
// second attempt: the one held back, which the server counted, ran
// nothing. It used to count, so that a task the server delivered again
// during a cluster's leader changes reached its last attempt having run
// fewer times, and was dead-lettered for it.
func TestADeliveryHeldBackIsNoAttempt(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ackWait = time.Second
	b := holdTestBackend(t, ackWait)
	const qname = "held-no-attempt"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "h1", Kind: "k", Queue: qname}))
	d := heldBack(t, b, qname)

	require.NoError(t, b.Retry(ctx, d, time.Now()))
	next, err := leaseWaiting(t, b, qname, 20*time.Second)
	require.NoError(t, err)
	require.Len(t, next, 1)
	require.Equal(t, 2, next[0].Task.Attempt, "the delivery held back is no attempt")
}

// slowNakMsg is a work message whose negative ack goes out and then
// takes a while to return, as on a busy host the goroutine that sent it
// may not run again at once.
type slowNakMsg struct {
	jetstream.Msg
	after time.Duration
}

func (m slowNakMsg) NakWithDelay(delay time.Duration) error {
	err := m.Msg.NakWithDelay(delay)
	time.Sleep(m.after)
	return err
}

func (m slowNakMsg) Nak() error {
	err := m.Msg.Nak()
	time.Sleep(m.after)
	return err
}

// TestADeliveryAfterARetrysNegativeAckIsHandedOut: the delivery the
// server makes at once after a Retry's negative ack (its delay run out)
// reaches the process before the Retry returns: it is handed out, not
// held back by the delivery the Retry is settling, which would leave the
// message undelivered for a whole AckWait.
func TestADeliveryAfterARetrysNegativeAckIsHandedOut(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ackWait = 8 * time.Second
	b := holdTestBackend(t, ackWait)
	const qname = "retried"
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: qname}))
	ds, err := leaseWaiting(t, b, qname, 20*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	first := ds[0]
	r := first.Receipt.(*receipt)
	r.mu.Lock()
	r.msg = slowNakMsg{Msg: r.msg, after: time.Second}
	r.mu.Unlock()

	require.NoError(t, b.Retry(ctx, first, time.Now())) // a plain negative ack: delivered again at once
	ds, err = leaseWaiting(t, b, qname, ackWait/2)
	require.NoError(t, err, "delivered again at once, not after another AckWait")
	require.Len(t, ds, 1)
	require.Equal(t, first.Task.ID, ds[0].Task.ID)
	require.Equal(t, 2, ds[0].Task.Attempt)
	require.NoError(t, b.Ack(ctx, ds[0]))
}

// TestADeliveryAfterARefusedReleasesNegativeAckIsHandedOut: as
// TestADeliveryAfterARetrysNegativeAckIsHandedOut, for a Release whose
// copy the full work stream refused, which gives the delivery back with
// a negative ack.
func TestADeliveryAfterARefusedReleasesNegativeAckIsHandedOut(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ackWait = 8 * time.Second
	b := openTestBackend(t, Config{Mode: ModeEmbedded, AckWait: ackWait, MaxMsgs: 1, PublishTimeout: time.Second,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qname = "refused"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "f1", Key: "k-1", Kind: "k", Queue: qname}))
	ds, err := leaseWaiting(t, b, qname, 20*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	first := ds[0]
	r := first.Receipt.(*receipt)
	r.mu.Lock()
	r.msg = slowNakMsg{Msg: r.msg, after: time.Second}
	r.mu.Unlock()

	err = b.Release(ctx, first)
	require.ErrorContains(t, err, "negative ack", "its copy refused: given back with a negative ack")
	ds, err = leaseWaiting(t, b, qname, ackWait/2)
	require.NoError(t, err, "delivered again at once, not after another AckWait")
	require.Len(t, ds, 1)
	require.Equal(t, "f1", ds[0].Task.ID)
	require.Equal(t, 2, ds[0].Task.Attempt)
	require.NoError(t, b.Ack(ctx, ds[0]))
}

// TestASettlementAfterAFailedRetryHolds: a delivery whose Retry failed
// (its negative ack not sent) and which a settlement then takes up again
// (an Ack) holds its message while that settlement runs, as after any
// failed settlement: the failed negative ack does not leave it marked as
// one going out.
func TestASettlementAfterAFailedRetryHolds(t *testing.T) {
	t.Parallel()
	now := time.Now()
	r := &receipt{b: &Backend{}, ackWait: time.Minute, touched: now}
	r.setLease(now, time.Minute)
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NoError(t, r.begin())
	require.NoError(t, r.lastWord(nakOp))
	require.Error(t, r.failedIf(errors.New("nats: connection closed")))
	require.NoError(t, r.begin()) // the next settlement, r.mu held across it
	require.True(t, r.holds(now), "held while the next settlement runs")
}

// TestADeliveryWhoseLeaseEndedIsHandedOutAgain: a delivery whose lease
// ended with no settlement under way (a handler that hangs) holds
// nothing, although the server's AckWait may run on a while after it
// (its last renewal): any settlement of it fails. The server's delivery
// of its message again is handed out, not held back with an in-progress
// ack that would keep the message from every worker for another AckWait.
func TestADeliveryWhoseLeaseEndedIsHandedOutAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ackWait = time.Second
	b := holdTestBackend(t, ackWait)
	const qname = "leaseended"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "e1", Kind: "k", Queue: qname}))
	ds, err := leaseWaiting(t, b, qname, 20*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	first := ds[0]
	wpi := believeRenewed(first, time.Now().Add(6*time.Second), false)
	r := first.Receipt.(*receipt)
	r.lmu.Lock()
	r.leaseEnd = time.Now() // ended; the process believes the server's AckWait runs on
	first.LeaseUntil = r.leaseEnd
	r.lmu.Unlock()

	ds, err = leaseWaiting(t, b, qname, 3*ackWait)
	require.NoError(t, err, "delivered again and handed out")
	require.Len(t, ds, 1)
	require.Equal(t, "e1", ds[0].Task.ID)
	require.Equal(t, 2, ds[0].Task.Attempt)
	require.Zero(t, wpi.Load(), "no in-progress ack for the delivery whose lease ended")
	require.ErrorIs(t, b.Ack(ctx, first), queue.ErrLeaseLost)
	require.NoError(t, b.Ack(ctx, ds[0]))
}
