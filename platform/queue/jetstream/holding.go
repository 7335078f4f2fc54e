package jetstream

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// A second delivery of a message this process holds. A consumer leader
// replicates a delivery with the message's stored time, not the time it
// delivered it (nats-server 2.15, consumer.go deliverMsg); after a leader
// change the new leader takes a delivery of a message stored more than an
// AckWait before it was delivered (a backlog, a retry after its delay)
// for expired and delivers the message again at once, while the first
// delivery still runs (TestStepDownRedeliversAMessageInFlight). Within
// one process:
//
//   - a delivery of a message that this process handed out and holds
//     (holder) is not handed out, nor settled: an ack, a negative ack or
//     a term on it would act on the server's one pending entry of the
//     message, which the held delivery's settlement settles (the server
//     keys it by stream sequence, whichever delivery's reply subject it
//     comes on). An in-progress ack goes out on the held delivery instead
//     (heldAgain), which restarts the server's AckWait and replicates the
//     time it was sent (TestASecondDeliveryOfAHeldMessageIsNotHandedOut);
//   - a second delivery of a message still in the prefetch buffer takes
//     its place there (prefetch);
//   - a message stored more than half an AckWait before it reaches the
//     buffer is sent an in-progress ack at once (prefetch), and so is
//     one that grew that old in the buffer before a refresh (deliver),
//     so that a leader change soon after does not find its delivery
//     expired. Younger messages pay a comparison.
//
// A delivery whose settlement failed, whose negative ack is going out
// (the server delivers the message again once its delay ran out, perhaps
// before the settlement has forgotten the delivery), whose lease ended
// with no settlement under way, or whose AckWait ran out by this
// process's clock (less heldSlack), is not held: the
// server's delivery of its message again is legitimate and is handed out
// (TestADeliveryWhoseLeaseRanOutIsHandedOutAgain,
// TestADeliveryAfterARetrysNegativeAckIsHandedOut,
// TestADeliveryWhoseLeaseEndedIsHandedOutAgain). What another process
// holds is not known here: two processes can still both run a message.

// heldSlack is how long before the end of a delivery's AckWait, by this
// process's clock, it is no longer held: the server started that AckWait
// when it sent the message, before this process touched it on arrival,
// and a delivery again at its end is legitimate.
func heldSlack(ackWait time.Duration) time.Duration { return min(ackWait/10, time.Second) }

// holder returns the delivery of the message seq (stored at stored) that
// this process handed out and still holds, or nil (see holderLocked).
func (b *Backend) holder(q *queueState, seq uint64, stored, now time.Time) *receipt {
	b.imu.Lock()
	defer b.imu.Unlock()
	return q.holderLocked(seq, stored.UnixNano(), now)
}

// holderLocked returns the delivery of the message seq (stored at stored,
// Unix nanoseconds: not a message of a work stream set up anew) that this process handed
// out and still holds, or nil: tracked (not settled), its last
// settlement not failed, and the server's AckWait, as this process last
// restarted it, not run out (less heldSlack). The Backend's imu held.
func (q *queueState) holderLocked(seq uint64, stored int64, now time.Time) *receipt {
	h := q.holding[seq]
	if h == nil || h.stored != stored || !h.holds(now) {
		return nil
	}
	return h
}

// holds reports whether r, tracked, still holds its message (see
// holderLocked). A settlement (or Extend) holding r.mu has cleared its
// failure (begin): r is held while it runs. With none running, r holds
// nothing once its lease ended (a handler that hangs), unless its ack is
// still to go out (acking): any settlement of it fails (begin), although
// the server's AckWait may run on a while after its last renewal.
func (r *receipt) holds(now time.Time) bool {
	idle, failed := r.mu.TryLock(), false
	if idle {
		failed = r.failed
		r.mu.Unlock()
	}
	r.lmu.Lock()
	defer r.lmu.Unlock()
	if r.ending && (failed || r.naking) { // not renewed since (Extend renews it again); a negative ack going out (lastWord)
		return false
	}
	if idle && !r.ending && !r.acking && now.After(r.leaseEnd) {
		return false
	}
	return now.Before(r.touched.Add(r.ackWait - heldSlack(r.ackWait)))
}

// heldAgain is called for a delivery md of the message that h holds,
// which is not handed out (see above): it sends an in-progress ack on h's
// message, unless h's last word (ack, negative ack, term) is going out.
// It reads nothing of h's task, which its caller owns.
func (b *Backend) heldAgain(q *queueState, h *receipt, md *jetstream.MsgMetadata) {
	q.skipped(md.Sequence.Stream) // the server counts it: no attempt
	h.lmu.Lock()
	ending := h.ending
	var err error
	if !ending {
		err = b.inProgress(h.msg)
	}
	h.lmu.Unlock()
	b.log.Info("jetstream: the server delivered a message again while this process holds it (a consumer leader change): not handed out",
		zap.String("queue", q.queue), zap.Uint64("seq", md.Sequence.Stream),
		zap.Uint64("delivered", md.NumDelivered), zap.Uint64("held_delivered", h.delivered), zap.Bool("ending", ending), zap.Error(err))
}

// oldAt reports whether a message stored at stored was stored more than
// half an AckWait before at (see above).
func oldAt(stored, at time.Time, ackWait time.Duration) bool { return at.Sub(stored) > ackWait/2 }
