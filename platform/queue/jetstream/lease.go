package jetstream

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// Lease waits until a task of queueName is prefetched and returns up to max
// of them. leaseFor longer than the consumer's AckWait is kept alive by
// in-progress acks until it ends; shorter leases last AckWait (the
// delivery's LeaseUntil tells the truth). Prefetched messages are kept
// alive with in-progress acks while they wait in the buffer.
func (b *Backend) Lease(ctx context.Context, queueName string, max int, leaseFor time.Duration) ([]*queue.Delivery, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if max <= 0 {
		max = 1
	}
	q, err := b.queue(queueName)
	if err != nil {
		return nil, err
	}
	if err := q.consuming(ctx, b); err != nil {
		if b.isClosing() {
			return nil, queue.ErrClosed
		}
		return nil, err
	}
	var room [leaseRoom]inbound // what Lease takes, without an allocation up to leaseRoom
	for {
		ins := q.take(room[:0], max)
		if len(ins) == 0 {
			select {
			case <-q.avail:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-b.closing:
				return nil, queue.ErrClosed
			}
		}
		if b.isClosing() {
			// Taken from the buffer after Close began: given back like the
			// rest of the buffer (within the publish timeout), even when
			// this Lease's ctx ends.
			gctx, stop := b.serverContext(context.WithoutCancel(ctx))
			b.giveBack(gctx, q, ins)
			stop()
			return nil, queue.ErrClosed
		}
		if len(ins) == 1 {
			// Alone: returned in a slice its receipt holds.
			if d := b.deliver(ctx, q, ins[0], leaseFor); d != nil {
				r := d.Receipt.(*receipt)
				r.alone[0] = d
				return r.alone[:], nil
			}
			continue
		}
		out := make([]*queue.Delivery, 0, len(ins))
		for _, in := range ins {
			if d := b.deliver(ctx, q, in, leaseFor); d != nil {
				out = append(out, d)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
}

// leaseRoom is how many prefetched messages one Lease takes without
// allocating room for them: a pool's default BatchSize up to a
// concurrency of 64.
const leaseRoom = 64

// deliver turns a prefetched message into a delivery, or returns nil when
// it must not be handed out. A message that is not a task goes to the
// dead letter within ctx (see poison); a message delivered again whose
// task was dead-lettered is finished as such (redelivered.go).
func (b *Backend) deliver(ctx context.Context, q *queueState, in inbound, leaseFor time.Duration) *queue.Delivery {
	m := in.msg
	now := time.Now()
	ackWait := q.ackWait()
	if now.Sub(in.touched) >= ackWait {
		// Its lease ran out in the buffer (nothing renewed it: an
		// outage); the server delivers it again, and counted this
		// delivery, which ran nothing: no attempt (skipped).
		if in.md != nil {
			q.skipped(in.md.Sequence.Stream)
		}
		return nil
	}
	md := in.md // parsed by prefetch
	if md == nil {
		var err error
		if md, err = m.Metadata(); err != nil {
			b.log.Warn("jetstream: message without metadata", zap.String("queue", q.queue), zap.String("reply", m.Reply()), zap.Error(err))
			return nil
		}
	}
	delivered, seq := md.NumDelivered, md.Sequence.Stream
	if delivered > 1 {
		// Delivered again while this process holds it: not handed out
		// (holding.go). Asked again when it is tracked (track), in case
		// its other delivery is being handed out meanwhile.
		if h := b.holder(q, seq, md.Timestamp, now); h != nil {
			b.heldAgain(q, h, md)
			return nil
		}
	}
	if oldAt(md.Timestamp, now, ackWait) && !oldAt(md.Timestamp, in.touched, ackWait) {
		// Grown old in the buffer since it arrived or was last kept
		// alive: an in-progress ack replicates a true delivery time
		// (holding.go).
		_ = b.inProgress(m)
	}
	r := &receipt{b: b, q: q, msg: m, seq: seq, stored: md.Timestamp.UnixNano(), delivered: delivered, ackWait: ackWait, touched: in.touched}
	t := &r.task // one allocation for the receipt, its delivery and its task
	keyed, err := decodeTaskInto(t, m.Headers(), m.Data(), q.queue)
	if err != nil {
		b.poison(ctx, q, m, md, err)
		return nil
	}
	r.keyed = keyed
	if !t.NotBefore.IsZero() && t.NotBefore.After(now) {
		// A server without schedules, or a schedule that fired early
		// (clock skew between servers): not an attempt.
		if m.NakWithDelay(t.NotBefore.Sub(now)) == nil {
			q.pmu.Lock()
			q.early[seq]++
			q.hasEarly.Store(true)
			q.nakDelayed[seq] = t.NotBefore
			q.pmu.Unlock()
		}
		return nil
	}
	// Delivered before (or stored before the owned embedded server
	// started, which may have forgotten the deliveries its killed
	// predecessor made): the task may have finished already. A task with
	// a generated key has a marker only when it succeeded on its last
	// attempt (Ack), so only a delivery after one this process did not
	// retry itself can find one.
	retriedHere := delivered > 1 && q.retriedHere(seq, delivered) // asked once: it forgets
	if !retriedHere {
		// A re-driven copy deletes the dead letter it came from, if a
		// Redrive cut short left it: on its first delivery, or on a later
		// one when the first went to a process that died before it got
		// here (a prefetched copy), before it may be found finished. Not
		// handed out while that dead letter may still be there: run, it
		// could succeed and stay listed as dead too. The server delivers
		// it again after AckWait, and the delete is tried again.
		id := m.Headers().Get(hdrMsgID)
		if from, ok := redrivenFrom(id); ok && !b.dropRedriven(ctx, q, t, from) {
			q.skipped(seq)
			return nil
		}
		// A Release's copy deletes the message it copies, if a Release
		// that could not tell whether its copy was stored left it to the
		// server (releaseUnknown), or its ack was lost: that message's
		// max-deliveries advisory would dead-letter the task while its
		// copy runs. Not handed out while it may still be there. That
		// message is older than its copy: a copy stored at or before the
		// sequence it names (its work stream set up anew since, its
		// numbering started again) copies no message of this stream, and
		// would delete itself, or another message of its task.
		if from, ok := releasedFrom(id); ok && from < seq && !b.dropReleased(ctx, q, t, from) {
			q.skipped(seq)
			return nil
		}
	}
	if keyed && (delivered > 1 || md.Timestamp.Before(b.srvSince)) ||
		!keyed && delivered > 1 && !retriedHere {
		o, ok, err := b.finishedBefore(ctx, q, t.Key, keyed, md.Timestamp)
		if err != nil {
			b.log.Warn("jetstream: redelivered task not handed out: its finished-key marker could not be looked for (delivered again later)",
				zap.String("queue", q.queue), zap.String("task", t.ID), zap.Uint64("seq", seq), zap.Error(err))
			q.skipped(seq)
			return nil
		}
		if ok {
			// A dead letter is finished as the one stored, its watcher
			// told (redelivered.go); a success, or a dead letter whose
			// copy is gone (purged), is only removed.
			if o != task.DeadLettered || !b.deadLetteredBefore(ctx, r, md) {
				b.dropFinished(q, m, t, o)
				q.forgetEarly(seq)
			}
			// (deadLetteredBefore forgets the message it terminated, and
			// counts one it left to the server as skipped.)
			return nil
		}
	}
	early := q.earlyOf(seq) // kept until the message is settled for good (see earlyOf)
	if delivered > 1 && !retriedHere && b.deadLetteredBefore(ctx, r, md) {
		return nil
	}
	now = time.Now()
	touched, live := b.touchForHandOut(ctx, m, in.touched, now, ackWait)
	if !live {
		// Its AckWait ran out during the lookups above, or may have: the
		// server delivers it again; this delivery ran nothing.
		q.skipped(seq)
		return nil
	}
	t.Attempt = max(1, t.Attempt+int(delivered)-early) // t.Attempt: attempts used before a Release
	r.attempt, r.early, r.keyed, r.touched = t.Attempt, early, keyed, touched
	r.del = queue.Delivery{Task: t, Receipt: r}
	d := &r.del
	r.setLease(now, leaseFor) // r is not shared yet
	if h := b.track(r, now); h != nil {
		b.heldAgain(q, h, md)
		return nil
	}
	return d
}

// touchForHandOut tells whether a prefetched message last touched at
// touched may be handed out at now, after deliver's lookups, and when it
// was last touched then. Nothing renews it while they run (a slow server,
// a loaded process): taken from the buffer, the buffer keeper does not
// refresh it, and it is not tracked yet for the lease keeper. Its
// AckWait, as restarted at touched, must not have run out, less
// heldSlack (the server started it before this process touched it); when
// renewAfter of it has passed, as the lease keeper would have it renewed
// by then, an in-progress ack must be heard (confirmHeard) before it runs
// out: left to the lease keeper, whose first tick after the hand-out may
// come a quarter AckWait later, it would be renewed up to three quarters
// into its AckWait (TestAHandOutRenewsWhatTheLeaseKeeperWouldHave). A
// message that ran out is delivered again by the server; handed out, it
// would run beside that delivery
// (TestADeliveryWhoseLookupsOutlastItsAckWaitIsNotHandedOut).
func (b *Backend) touchForHandOut(ctx context.Context, m jetstream.Msg, touched, now time.Time, ackWait time.Duration) (time.Time, bool) {
	end := touched.Add(ackWait - heldSlack(ackWait))
	if !now.Before(end) {
		return touched, false
	}
	if now.Sub(touched) < renewAfter(ackWait) {
		return touched, true
	}
	if b.inProgress(m) != nil {
		return touched, false
	}
	cctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	if err := b.confirmHeard(cctx); err != nil {
		b.log.Debug("jetstream: renew a prefetched message before it is handed out", zap.Error(err))
		return touched, false
	}
	return now, true
}
