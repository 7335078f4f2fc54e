package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// A Release whose copy the server does not store. The delivery cannot go
// back uncounted: the server counts it whatever follows, a negative ack
// or its AckWait running out. Release says so with an error, and with
// what became of the delivery, rather than report a give-back that did
// not happen.

// lastDelivery reports whether r is the last delivery Config.MaxDeliver
// allows (the deliveries given back before the task's NotBefore count
// with the server: earlyOf): after it the server delivers the message no
// more, and its MAX_DELIVERIES advisory dead-letters the task (advisory.go, exhausted.go).
// The deliveries of r's message this process held back since r was
// handed out (heldAgain: the server delivered it again while r ran)
// count with the server too: its count is what earlyOf says now, not
// what r's delivery found (r.early).
func (b *Backend) lastDelivery(r *receipt) bool {
	return b.cfg.MaxDeliver > 0 && r.attempt+max(r.early, r.q.earlyOf(r.seq)) >= b.cfg.MaxDeliver
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
// queued, to run again. Unanswered again, the Release leaves the
// delivery to the server (releaseUnknown).
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
// or this one), else why not; errCopyUnanswered when this one is not
// answered either: stored or not, no one can tell yet (releaseUnknown).
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
		return fmt.Errorf("%w (the stream was full before: %w)", errCopyUnanswered, perr)
	}
	return err
}

// errCopyUnanswered says that a released copy's last offers went
// unanswered until the lease left no time to ask again: the copy may be
// stored, or not (releaseUnknown).
var errCopyUnanswered = errors.New("its copy's last offers went unanswered: it may be queued")

// releaseUnknown ends a Release of r on its last delivery whose copy may
// be stored, or not: its offers went unanswered (perr, errCopyUnanswered)
// until the lease left no time to ask again (the network to the server
// frozen, the work stream's leader slow). A dead letter would not be
// true if the copy is queued, to run, nor would a give-back if it is
// not: the delivery is left to the server as it is, which delivers the
// message no more. Its MAX_DELIVERIES advisory, after the AckWait, finds
// out (releasedCopyQueued): the copy queued, the message is deleted and
// the copy runs; else the task is dead-lettered, and the dead watcher
// told. Release fails saying so, with no queue.ErrDeadLettered: its
// caller tells the task's source nothing, which hears the outcome of the
// copy or of the dead letter, one of them.
func (b *Backend) releaseUnknown(r *receipt, perr error) error {
	r.finish()
	return fmt.Errorf("jetstream: release task %s on its last delivery (max_deliver %d): %w: left to the server, whose max-deliveries advisory dead-letters the task unless its copy is queued",
		r.del.Task.ID, b.cfg.MaxDeliver, perr)
}

// releasedCopyQueued reports whether a Release's copy of the message seq
// of q's work stream st, stored at stored (task id, key, keyed), is queued in
// that stream, or was delivered, for the max-deliveries advisory of the
// message (exhausted): a Release on the last delivery that could not
// tell whether its copy was stored (releaseUnknown), or whose ack of the
// message was lost after its copy was stored, leaves the message to the
// server. Such a Release recorded the key's marker (task.Returned)
// before it offered the copy: with no marker newer than the message
// (less copyLookupMargin, for the clocks of the servers leading the two
// streams), one direct get, there is no copy; else the work stream after
// seq is read for the Nats-Msg-Id of a copy of the task (readWork, as
// FindTasks; the copy's, or that of a copy of it released again: the
// key's, releaseMark, a sequence) and the task's id: a
// stream not read to its end (maxFindScan) is an error, the advisory
// tried again later. A copy delivered, run and acked while the stream
// is read is no longer there to be found; its delivery deleted the
// message seq first (dropReleased), before it was handed out: so when
// the read finds no copy, the message is read once more, and is gone
// if a copy was delivered (TestACopyRunDuringTheAdvisorysScanIsNoDeadLetter).
func (b *Backend) releasedCopyQueued(ctx context.Context, q *queueState, st jetstream.Stream, seq uint64, stored time.Time, id, key string, keyed bool) (bool, error) {
	m, err := b.lastDone(ctx, q.doneSubject(key, keyed))
	if isMsgNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up the marker of key %q: %w", key, err)
	}
	if m.Time.Before(stored.Add(-copyLookupMargin)) {
		return false, nil
	}
	copyID := msgIDOf(key, !keyed) + releaseMark // then a sequence: seq's, or a copy's of it, released again
	var budget atomic.Int64
	budget.Store(b.scanLimit())
	keep := func(f *[]queue.FoundTask) func(*jetstream.RawStreamMsg) {
		return func(raw *jetstream.RawStreamMsg) {
			// Another task's key may begin so too: a sequence follows,
			// and the task is this one.
			msgID := raw.Header.Get(hdrMsgID)
			rest, ok := strings.CutPrefix(msgID, copyID)
			if !ok {
				return
			}
			if _, err := strconv.ParseUint(rest, 10, 64); err != nil {
				return
			}
			if c, _, err := decodeTask(raw.Header, nil, q.queue); err == nil && c.ID == id {
				*f = append(*f, queue.FoundTask{})
			}
		}
	}
	var errs []error
	for _, r := range b.readWork(ctx, st, seq+1, &budget, keep) {
		switch {
		case len(r.found) > 0:
			return true, nil
		case r.err != nil:
			errs = append(errs, r.err)
		case r.unreadFrom != 0:
			errs = append(errs, fmt.Errorf("not read beyond %d messages (sequences %s)", b.scanLimit(), r.unread()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return false, fmt.Errorf("look for the released copy of message %d: %w", seq, err)
	}
	switch _, err := st.GetMsg(ctx, seq); {
	case isMsgNotFound(err):
		return true, nil // deleted by its copy's delivery (or handled otherwise) since it was read
	case err != nil:
		return false, fmt.Errorf("read message %d again after the look for its released copy: %w", seq, err)
	}
	return false, nil
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
	t := r.del.Task
	if !b.lastDelivery(r) {
		if err := r.lastWord(giveBackOp); err != nil {
			return fmt.Errorf("jetstream: release task %s: its copy was not stored: %w; %w", t.ID, perr, err)
		}
		if err := r.msg.Nak(); err != nil {
			return fmt.Errorf("jetstream: release task %s: its copy was not stored: %w; negative ack: %w", t.ID, perr, err)
		}
		now := time.Now()
		r.lmu.Lock()
		r.leaseEnd, r.del.LeaseUntil = now, now
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

// releasedFrom returns the sequence of the message that msgID, a
// Release's copy's Nats-Msg-Id, copies, if it is one (a producer's key
// written so is hashed: msgIDOf).
func releasedFrom(msgID string) (uint64, bool) { return markedSeq(msgID, releaseMark) }

// dropReleased deletes the message at seq of q's work stream that t's
// message, a Release's copy, copies, if it is still there: a Release
// acknowledges it once its copy is stored, but one on the last delivery
// that could not tell (releaseUnknown), or whose ack was lost, leaves it
// to the server, whose max-deliveries advisory for it would dead-letter
// the task while the copy runs (it does not when the copy is still
// queued: releasedCopyQueued). The copy's next delivery (its first, or a
// later one when the first was prefetched by a process that died)
// deletes it first, as a re-driven copy its dead letter (dropRedriven):
// the advisory then finds it gone. Only t's own message is deleted (t's
// id). It reports whether that message is gone; a failure is logged,
// leaves it, and reports false. It runs within ctx (the Lease's), at
// most Config.PublishTimeout and while connected.
func (b *Backend) dropReleased(ctx context.Context, q *queueState, t *task.Task, seq uint64) bool {
	ctx, stop := b.serverContext(ctx)
	defer stop()
	err := func() error {
		st := q.workStream()
		m, err := st.GetMsg(ctx, seq)
		if isMsgNotFound(err) {
			return nil // acknowledged, as a Release does
		}
		if err != nil {
			return err
		}
		if o, _, err := decodeTask(m.Header, nil, q.queue); err != nil || o.ID != t.ID {
			return nil
		}
		if err := st.DeleteMsg(ctx, seq); err != nil && !isMsgNotFound(err) {
			return err
		}
		q.forgetMessage(seq)
		b.log.Info("jetstream: message a Release left to the server deleted: its copy is delivered", zap.String("queue", q.queue),
			zap.String("task", t.ID), zap.Uint64("seq", seq))
		return nil
	}()
	if err != nil {
		b.log.Warn("jetstream: released task not handed out: the message it copies could not be deleted (delivered again later)",
			zap.String("queue", q.queue), zap.String("task", t.ID), zap.Uint64("seq", seq), zap.Error(err))
		return false
	}
	return true
}
