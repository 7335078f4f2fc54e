package jetstream

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestTheKeepersRenewAtTheirSecondTick: the lease keeper and the buffer
// keeper tick every quarter AckWait and renew what half an AckWait has
// passed for; a renewal touches at the tick's time, so the second tick
// after it comes half an AckWait later, a little less when the first was
// late (a loaded process). Such a tick renewed nothing: the renewal waited
// for the third tick, three quarters into the AckWait, leaving a quarter
// of it for the keeper to be scheduled and the server to hear the
// in-progress ack (250 ms with the tests' AckWait of 1 s: a lease lost,
// under -race with load beside it, in TestBufferDoesNotOutliveAPartition
// and TestAckWaitingForItsRecordKeepsItsLease). The second tick renews
// now. keep and refresh are called with the time of such a tick (the
// keepers' own ticks, a long AckWait apart, do not come in between).
func TestTheKeepersRenewAtTheirSecondTick(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const (
		qname   = "keeptick"
		ackWait = 40 * time.Second
		every   = ackWait / 4       // the keepers' tick
		second  = 2*every - every/8 // the second tick after a touch, the first one late
	)
	b := openTestBackend(t, Config{AckWait: ackWait, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "a", Kind: "k", Queue: qname}, &task.Task{ID: "b", Kind: "k", Queue: qname}))
	d := leaseOne(t, b, qname)
	r := d.Receipt.(*receipt)
	require.NoError(t, b.Extend(ctx, d, 2*ackWait)) // a lease beyond the AckWait: the lease keeper keeps it

	r.lmu.Lock()
	touched := r.touched
	r.lmu.Unlock()
	forget, sent, before := r.keep(touched.Add(second))
	require.False(t, forget)
	require.True(t, sent, "the lease keeper's second tick after a touch renews the lease")
	require.Equal(t, touched, before)

	q := b.knownQueue(qname)
	var inTouched time.Time
	require.Eventually(t, func() bool {
		q.pmu.Lock()
		defer q.pmu.Unlock()
		if len(q.buf) != 1 {
			return false
		}
		inTouched = q.buf[0].touched
		return true
	}, 20*time.Second, 10*time.Millisecond, "the other task waits in the buffer")
	renewed := q.refresh(b, inTouched.Add(second))
	require.Len(t, renewed, 1, "the buffer keeper's second tick after a touch renews a buffered message")
	require.NoError(t, b.Ack(ctx, d))
}

// TestAHandOutRenewsWhatTheLeaseKeeperWouldHave: a prefetched message
// taken from the buffer is not renewed by the buffer keeper, and the
// lease keeper renews it at its first tick after the hand-out that finds
// renewAfter passed since the message's last touch. Handed out three
// eighths to half an AckWait after that touch without a renewal, that
// tick could come up to a quarter AckWait later, three quarters into the
// AckWait: the gap the keepers' renewAfter closed for their own ticks.
// touchForHandOut renews such a message before it is handed out, as the
// lease keeper would have done by then.
func TestAHandOutRenewsWhatTheLeaseKeeperWouldHave(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const (
		qname   = "handouttick"
		ackWait = 40 * time.Second
	)
	b := openTestBackend(t, Config{AckWait: ackWait, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "a", Kind: "k", Queue: qname}))
	d := leaseOne(t, b, qname)
	r := d.Receipt.(*receipt)

	now := time.Now()
	touched := now.Add(-(renewAfter(ackWait) + ackWait/16)) // seven sixteenths: below half
	got, live := b.touchForHandOut(ctx, r.msg, touched, now, ackWait)
	require.True(t, live)
	require.Equal(t, now, got, "handed out past renewAfter since its touch: renewed at the hand-out")

	touched = now.Add(-renewAfter(ackWait) + ackWait/16) // five sixteenths
	got, live = b.touchForHandOut(ctx, r.msg, touched, now, ackWait)
	require.True(t, live)
	require.Equal(t, touched, got, "handed out before renewAfter since its touch: left to the lease keeper")
	require.NoError(t, b.Ack(ctx, d))
}
