package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// Ack settles d as done: it records the task's key as finished (done.go),
// then acknowledges the message, which the work-queue stream deletes. With
// Config.AckSync it waits for the server to store the record and to
// confirm the ack. Without (the default), it publishes the record and
// returns; the ack goes out when the server has stored the record, and
// the delivery's lease is renewed until then (up to Config.PublishTimeout
// later: a redelivery before the record is stored would find no marker
// and run; TestAckWaitingForItsRecordKeepsItsLease). A
// record the server refuses or a connection lost before then leaves the
// task unacked: it is delivered again after AckWait, as a lost ack would
// be. A record no stream answered (the server lost the stream) is stored
// once more after the stream is set up again, and the ack follows
// (restore.go). A task whose key Prepare generated is recorded only on
// its last attempt (queue.Delivery.Last), or when a source waits to be
// told its outcome (task.HeaderCompletion): a lost ack would otherwise
// bring it back, past its last attempt to be dead-lettered although it
// succeeded, or to run again and tell its source a second outcome.
// Other keyless successes are acked alone: a lost ack runs them again
// (at least once). For a task whose source waits, Ack returns only once
// the record is stored, whatever AckSync says: the source is told
// "succeeded" after Ack returns, and a record lost after that (the
// server it went to shut down) would let the task run again after its
// source heard it succeeded. A record whose answer was lost fails the Ack
// although the record is stored: the source is not told then, and the
// redelivery, found finished by that record and removed without being
// handed out, is reported to the WatchFinished function, which tells it
// (finishedagain.go).
func (b *Backend) Ack(ctx context.Context, d *queue.Delivery) (err error) {
	r, err := b.receiptOf(d)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin(); err != nil {
		return err
	}
	defer func() { err = r.failedIf(err) }()
	told := d.Task.Header(task.HeaderCompletion) != ""
	if !r.keyed && !d.Last && !told {
		// A generated key is not remembered (done.go): the ack alone.
		if err := r.lastWord("ack"); err != nil {
			return err
		}
		if err := b.ack(ctx, r); err != nil {
			return fmt.Errorf("jetstream: ack task %s: %w", d.Task.ID, err)
		}
		r.finishGone()
		return nil
	}
	if !b.cfg.AckSync && !told {
		if err := r.ackFollows(); err != nil { // the ack follows the record
			return err
		}
		if err := b.markDoneThenAck(ctx, r); err != nil {
			if errors.Is(err, errClaimLost) {
				r.lmu.Lock()
				r.acking = false
				r.lmu.Unlock()
				return b.claimLost(r, "ack", err)
			}
			return err
		}
		r.finishAcking()
		return nil
	}
	sctx, cancel := r.settleCtx(ctx)
	defer cancel()
	if err := b.claim(sctx, r, task.Succeeded, ""); err != nil {
		if errors.Is(err, errClaimLost) {
			return b.claimLost(r, "ack", err)
		}
		return leaseCut(sctx, err)
	}
	if err := r.lastWord("ack"); err != nil {
		return err
	}
	if err := b.ack(ctx, r); err != nil {
		return fmt.Errorf("jetstream: ack task %s: %w", d.Task.ID, err)
	}
	r.finishGone()
	return nil
}

// ack acknowledges r's message. With Config.AckSync it waits for the
// server's confirmation (DoubleAck), at most for AckWait when ctx has no
// deadline (after that the server redelivers the message anyway; waiting
// longer would only hold the caller).
func (b *Backend) ack(ctx context.Context, r *receipt) error {
	if !b.cfg.AckSync {
		return r.msg.Ack()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, max(r.ackWait, time.Second))
		defer cancel()
	}
	return r.msg.DoubleAck(ctx)
}

// Release gives d back to its queue without counting this delivery as an
// attempt (worker.Releaser): the pool calls it for deliveries it leased but
// never ran, or had to abandon, when it pauses or stops. JetStream counts
// every delivery of a message, and a negative ack would bring the task
// closer to its last attempt for work that never happened; so the task is
// published again as a new message (same id, key and headers; a Nats-Msg-Id
// of its own, so that the duplicate window does not drop it; the attempts
// it had used in HeaderTask's attempts field) and only then is the original
// acknowledged. A crash in between leaves both: the task is delivered
// twice, never lost. A copy without an answer within
// Config.PublishTimeout (stored, its answer lost with a stream leader) is
// sent again with its Nats-Msg-Id, which the server de-duplicates, as a
// dead-letter copy is (publishAnswered), rather than waited for until
// the lease ends.
//
// A copy the server does not store (a bounded work stream full, a
// refusal) fails the Release, which says what became of the delivery
// (releaseRefused): it is given back with a negative ack, delivered again
// at once and counted as an attempt; on the last delivery
// Config.MaxDeliver allows, after which the server delivers the message
// no more, the copy is offered again while a full stream may make room,
// and when it is still not stored the task is dead-lettered with a reason
// that says so, and Release returns queue.ErrDeadLettered
// (TestReleaseRefusedCountsTheDelivery,
// TestReleaseRefusedOnTheLastDeliveryDeadLettersSaying). On the last
// delivery, a copy whose offers all went unanswered may be stored or
// not: the delivery is left to the server, whose max-deliveries advisory
// finds out, and Release fails saying so (releaseUnknown). While the
// connection is down Release fails and the delivery is left to the
// server, which delivers it again after its AckWait
// (TestGiveBackDuringAnOutageIsNoReturn). It does not wait for a server
// it has lost: the publish ends as soon as the connection drops (or when
// it is down already), so a pool stopping during an outage is not held
// for a lease per give-back (TestPoolStopDuringAnOutageReturnsSoon).
func (b *Backend) Release(ctx context.Context, d *queue.Delivery) error {
	return b.release(ctx, d, false)
}

// release is Release. leave is set for a give-back the backend makes on
// its own (giveBack, at Close): a task it dead-letters then is left to
// the server, to be told to the dead watcher (see releaseRefused).
func (b *Backend) release(ctx context.Context, d *queue.Delivery, leave bool) (err error) {
	r, err := b.receiptOf(d)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin(); err != nil {
		return err
	}
	defer func() { err = r.failedIf(err) }()
	ctx, cancel := r.settleCtx(ctx)
	defer cancel()
	ctx, stop := b.whileConnected(ctx)
	defer stop()
	defer func() { err = leaseCut(ctx, err) }() // before stop ends ctx
	t := d.Task
	msg := encodeTask(t, msgSpec{subject: r.q.subject, msgID: msgIDOf(t.Key, !r.keyed) + releaseMark + strconv.FormatUint(r.seq, 10), keyed: r.keyed,
		attempts: r.attempt - 1})
	// The copy's Nats-Msg-Id is not the key, so after a restart the
	// server would not refuse the key while the copy is queued: record
	// it with the finished keys first (done.go). A crash in between
	// leaves the original queued, which is what the record says. On the
	// last delivery a generated key is recorded so too: the message's
	// max-deliveries advisory, when the Release leaves it to the server,
	// looks for the copy only after such a record (releasedCopyQueued).
	last := b.lastDelivery(r)
	var perr error
	if r.keyed || last {
		perr = b.markDone(ctx, r.q, t.Key, r.keyed, task.Returned, "")
	}
	if perr == nil {
		_, perr = b.publishAnswered(ctx, msg, "released copy")
		switch {
		case isStreamFull(perr) && last:
			perr = b.copyWhenRoom(ctx, msg, perr)
		case perr != nil && last && ctx.Err() != nil:
			perr = fmt.Errorf("%w: %w", errCopyUnanswered, perr) // cut short unanswered
		}
	}
	if perr != nil {
		if !b.nc.IsConnected() {
			// A negative ack would only be buffered by nats.go until a
			// reconnect (reported sent), which a stopping process does
			// not see: the delivery is left to the server as it is.
			r.finish()
			return fmt.Errorf("jetstream: release task %s: %w (not connected: left to the server, delivered again after its AckWait)", t.ID, perr)
		}
		if errors.Is(perr, errCopyUnanswered) {
			return b.releaseUnknown(r, perr)
		}
		return b.releaseRefused(ctx, r, perr, leave)
	}
	if err := r.lastWord("release"); err != nil {
		// The copy is stored and the original delivered again: a
		// duplicate, not a loss.
		return fmt.Errorf("jetstream: release task %s: its copy is queued: %w", t.ID, err)
	}
	if err := b.ack(ctx, r); err != nil {
		// The copy is stored; the original will be redelivered after
		// AckWait: a duplicate, not a loss.
		return fmt.Errorf("jetstream: release task %s: ack original: %w", t.ID, err)
	}
	r.finishGone()
	return nil
}

// Retry settles d as failed for now with a negative ack delayed until at.
// The next delivery's Attempt (NumDelivered) is one higher. When d was the
// last delivery Config.MaxDeliver allows, the task is dead-lettered
// instead, because the server would not deliver it again, with
// d.FailReason in its reason, d.DeadReason is set to the reason stored,
// and Retry returns queue.ErrDeadLettered: the settlement happened, as a
// dead letter.
func (b *Backend) Retry(ctx context.Context, d *queue.Delivery, at time.Time) (err error) {
	r, err := b.receiptOf(d)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin(); err != nil {
		return err
	}
	defer func() { err = r.failedIf(err) }()
	if b.lastDelivery(r) {
		reason := fmt.Sprintf("retry requested after the last of %d deliveries (max_deliver)", b.cfg.MaxDeliver)
		if d.FailReason != "" {
			reason = d.FailReason + " (" + reason + ")"
		}
		sctx, cancel := r.settleCtx(ctx)
		defer cancel()
		if err := b.deadLetterLocked(sctx, r, r.attempt, reason); err != nil {
			return leaseCut(sctx, err)
		}
		return fmt.Errorf("jetstream: retry task %s on its last delivery (max_deliver %d): %w", d.Task.ID, b.cfg.MaxDeliver, queue.ErrDeadLettered)
	}
	if err := r.lastWord("retry"); err != nil {
		return err
	}
	delay := time.Until(at)
	if err := r.msg.NakWithDelay(delay); err != nil { // a plain nak when delay <= 0
		return fmt.Errorf("jetstream: nak task %s: %w", d.Task.ID, err)
	}
	r.q.pmu.Lock()
	if delay > 0 {
		r.q.nakDelayed[r.seq] = at
	}
	due := at
	if delay <= 0 {
		due = time.Now()
	}
	r.q.retried[r.seq] = retried{due: due, delivered: r.delivered}
	r.q.pmu.Unlock()
	r.finish()
	return nil
}

// Extend sends an in-progress ack (the server restarts AckWait) and
// promises the lease until now+leaseFor, kept alive with further
// in-progress acks when leaseFor exceeds AckWait. d.LeaseUntil is updated.
// It returns once the server confirmed it heard the in-progress ack (one
// round trip), fails while the connection is down or the server does not
// confirm within ctx (or the publish timeout), and reports the lease lost
// when the server's AckWait ran out without one (an outage, a partition:
// the server delivers the task again).
func (b *Backend) Extend(ctx context.Context, d *queue.Delivery, leaseFor time.Duration) error {
	r, err := b.receiptOf(d)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b.connDone.Load() {
		return queue.ErrClosed
	}
	if r.settled {
		return fmt.Errorf("jetstream: delivery already settled: %w", queue.ErrLeaseLost)
	}
	now := time.Now()
	r.lmu.Lock()
	leaseEnd, serverEnd := r.leaseEnd, r.touched.Add(r.ackWait)
	r.lmu.Unlock()
	if now.After(leaseEnd) {
		return fmt.Errorf("jetstream: lease ended at %s: %w", leaseEnd.Format(time.RFC3339Nano), queue.ErrLeaseLost)
	}
	if now.After(serverEnd) {
		// No in-progress ack the server heard since: its AckWait ran out
		// (an outage, a partition), and it delivers the message again.
		return fmt.Errorf("jetstream: AckWait unrenewed since %s: %w", serverEnd.Format(time.RFC3339Nano), queue.ErrLeaseLost)
	}
	if err := b.inProgress(r.msg); err != nil {
		return fmt.Errorf("jetstream: extend task %s: %w", d.Task.ID, err)
	}
	if err := b.confirmHeard(ctx); err != nil {
		return fmt.Errorf("jetstream: extend task %s: %w", d.Task.ID, err)
	}
	r.lmu.Lock()
	if now.After(r.touched) {
		r.touched = now
	}
	r.ending = false // kept again after a failed settlement
	r.setLease(now, leaseFor)
	r.lmu.Unlock()
	return nil
}
