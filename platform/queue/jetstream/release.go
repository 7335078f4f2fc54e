package jetstream

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plba/plba/platform/queue"
)

// A Release whose copy the server does not store. The delivery cannot go
// back uncounted: the server counts it whatever follows, a negative ack
// or its AckWait running out. Release says so with an error, and with
// what became of the delivery, rather than report a give-back that did
// not happen.

// lastDelivery reports whether r is the last delivery Config.MaxDeliver
// allows (the deliveries given back before the task's NotBefore count
// with the server: earlyOf): after it the server delivers the message no
// more, and its MAX_DELIVERIES advisory dead-letters the task (advisory.go).
func (b *Backend) lastDelivery(r *receipt) bool {
	return b.cfg.MaxDeliver > 0 && r.attempt+r.early >= b.cfg.MaxDeliver
}

// copyWhenRoom offers msg, a released copy that a full work stream
// refused (perr), again with Enqueue's back-off (other tasks acked make
// room), until the server stores it or ctx (the lease) has no more than
// Config.PublishTimeout left, kept for the dead letter that follows a
// copy never stored (releaseRefused). It returns nil once the copy is
// stored, else why it is not.
//
// An offer cut short while waiting for its answer may have been stored
// (room made as it went out, the answer slow or lost): it is asked once
// more, with the same Nats-Msg-Id, within half of what is left, and the
// answer says (the server de-duplicates a copy stored before). Taken for
// "still full", the task would be dead-lettered while its copy stays
// queued, to run again.
func (b *Backend) copyWhenRoom(ctx context.Context, msg *nats.Msg, perr error) error {
	parent := ctx
	if end, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, end.Add(-b.cfg.PublishTimeout))
		defer cancel()
	}
	wait := fullBackoff()
	for isStreamFull(perr) {
		if !b.waitForRoom(ctx, wait, func(error) {}) {
			return perr
		}
		// A fresh message for the next attempt, as Enqueue's.
		msg = &nats.Msg{Subject: msg.Subject, Header: msg.Header, Data: msg.Data}
		_, err := b.publishAnswered(ctx, msg, "released copy")
		if err != nil && !isStreamFull(err) && ctx.Err() != nil {
			return b.askStored(parent, msg, perr)
		}
		perr = err
	}
	return perr
}

// askStored offers msg, a released copy whose last offer ctx's wait for
// room cut short unanswered, once more with the same Nats-Msg-Id, within
// half of what is left of parent: nil when it is stored (by that offer
// or this one), else why not (perr, the full stream, when this one is
// not answered either).
func (b *Backend) askStored(parent context.Context, msg *nats.Msg, perr error) error {
	ctx := parent
	if end, ok := parent.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(parent, time.Until(end)/2)
		defer cancel()
	}
	msg = &nats.Msg{Subject: msg.Subject, Header: msg.Header, Data: msg.Data}
	_, err := b.publishAnswered(ctx, msg, "released copy")
	if err != nil && !isStreamFull(err) && ctx.Err() != nil {
		return perr // unanswered again: still full, as far as is known
	}
	return err
}

// releaseRefused ends a Release of r whose copy the server did not store
// (perr), while connected.
//
// Before the last allowed delivery, r is given back with a negative ack:
// delivered again at once, as a new attempt (the server counts this
// delivery), which the error says; its lease ends now (d.LeaseUntil).
//
// On the last one, a negative ack (or the lease running out) would end
// the task's deliveries, and the advisory would dead-letter it as if
// its lease had expired on a delivery that ran (exhaustedReason). The
// task is dead-lettered here instead, with a reason that says what
// happened, and attempts that do not count this delivery; Release
// returns queue.ErrDeadLettered, as Retry does: the delivery is settled,
// as a dead letter, and its caller reports that (the worker pool counts
// the dead letter and tells the task's source). A dead letter that cannot
// be stored either leaves the delivery to the server, as any failed
// settlement.
//
// With leave (Close's give-back of a prefetched message), no caller
// settles the delivery, and no one here could tell the task's source (a
// worker runtime stops telling before it closes its backend): the dead
// letter is stored, and the message left to the server as it is. The
// server delivers it no more; the process that handles its
// MAX_DELIVERIES advisory (another replica, or the next start) finds
// the dead letter stored for it and tells the dead watcher its reason
// (exhausted: the copy's Nats-Msg-Id), and deletes the message; a copy
// given back before, which the server would deliver again, finds it on
// that delivery likewise (deadLetteredBefore). The error still wraps
// queue.ErrDeadLettered.
func (b *Backend) releaseRefused(ctx context.Context, r *receipt, perr error, leave bool) error {
	t := r.d.Task
	if !b.lastDelivery(r) {
		if err := r.lastWord("release"); err != nil {
			return fmt.Errorf("jetstream: release task %s: its copy was not stored: %w; %w", t.ID, perr, err)
		}
		if err := r.msg.Nak(); err != nil {
			return fmt.Errorf("jetstream: release task %s: its copy was not stored: %w; negative ack: %w", t.ID, perr, err)
		}
		now := time.Now()
		r.lmu.Lock()
		r.leaseEnd, r.d.LeaseUntil = now, now
		r.lmu.Unlock()
		r.finish()
		return fmt.Errorf("jetstream: release task %s: its copy was not stored (%w): given back with a negative ack instead, delivered again at once as attempt %d (this delivery counts)",
			t.ID, perr, r.attempt+1)
	}
	reason := fmt.Sprintf("given back without a result on the last of %d deliveries (max_deliver), after %d attempts: its copy for another delivery was not stored (%v), and the server delivers the message no more",
		b.cfg.MaxDeliver, r.attempt-1, perr)
	if leave {
		if err := b.storeDeadLocked(ctx, r, r.attempt-1, reason); err != nil {
			return fmt.Errorf("jetstream: give back task %s on its last delivery (max_deliver %d): its copy was not stored: %w; dead-letter it: %w", t.ID, b.cfg.MaxDeliver, perr, err)
		}
		return fmt.Errorf("jetstream: give back task %s on its last delivery (max_deliver %d): its copy was not stored (%w): its dead letter is stored, the message left to the server, whose max-deliveries advisory tells it: %w",
			t.ID, b.cfg.MaxDeliver, perr, queue.ErrDeadLettered)
	}
	if err := b.deadLetterLocked(ctx, r, r.attempt-1, reason); err != nil {
		return fmt.Errorf("jetstream: release task %s on its last delivery (max_deliver %d): its copy was not stored: %w; dead-letter it: %w", t.ID, b.cfg.MaxDeliver, perr, err)
	}
	return fmt.Errorf("jetstream: release task %s on its last delivery (max_deliver %d): its copy was not stored (%w): %w", t.ID, b.cfg.MaxDeliver, perr, queue.ErrDeadLettered)
}
