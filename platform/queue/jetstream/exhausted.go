package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// What an advisory's message becomes: a dead letter (stored once, the
// watcher told, the message deleted), or nothing when a released copy of
// it is queued (see advisory.go for how advisories reach the backend).

// exhausted dead-letters the message an advisory names: store the copy,
// tell the watcher, delete the message. A message already gone was
// handled before (the watcher was told before it was deleted).
func (b *Backend) exhausted(ctx context.Context, queueName string, a maxDeliveriesAdvisory, adv jetstream.Msg) error {
	q, err := b.queue(queueName)
	if err != nil {
		return err
	}
	s, err := b.js.Stream(ctx, q.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %q: %w", q.stream, err)
	}
	raw, err := s.GetMsg(ctx, a.StreamSeq)
	if isMsgNotFound(err) || errors.Is(err, jetstream.ErrStreamNotFound) {
		// Handled before, or its stream deleted since the lookup above,
		// and the message with it.
		q.forgetMessage(a.StreamSeq)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get message %d: %w", a.StreamSeq, err)
	}
	t, keyed, err := decodeTask(raw.Header, raw.Data, queueName)
	foreign := err != nil
	if foreign {
		keyed = false // not a task: no key of its own to remember
		t = foreignStandIn(queueName, a.StreamSeq, raw.Header, raw.Data, raw.Time)
	}
	// t.Attempt: attempts used before a Release; the deliveries this
	// process gave back before NotBefore were not attempts (earlyOf).
	early := q.earlyOf(a.StreamSeq)
	t.Attempt = max(0, t.Attempt+int(a.Deliveries)-early)
	prev, err := b.storedCopy(ctx, q, a.StreamSeq, t.ID, adv)
	if err != nil {
		return err
	}
	if prev == nil && !foreign {
		// Given back on its last delivery, its copy stored although the
		// Release could not tell (releaseUnknown) or its ack was lost:
		// the task lives on as its copy, and is no dead letter.
		copied, err := b.releasedCopyQueued(ctx, q, s, a.StreamSeq, raw.Time, t.ID, t.Key, keyed)
		if err != nil {
			return err
		}
		if copied {
			if err := s.DeleteMsg(ctx, a.StreamSeq); err != nil && !isMsgNotFound(err) {
				return fmt.Errorf("delete message %d, released: %w", a.StreamSeq, err)
			}
			q.forgetMessage(a.StreamSeq)
			b.log.Info("jetstream: exhausted task not dead-lettered: its released copy is queued, or was delivered",
				zap.String("queue", queueName), zap.String("task", t.ID), zap.Uint64("seq", a.StreamSeq))
			return nil
		}
	}
	var stored deadInfo
	if prev != nil {
		// Stored before (an earlier handling of this advisory, or a
		// DeadLetter whose term was lost): tell it as it was.
		stored = deadInfo{reason: prev.Reason, at: prev.At, attempts: prev.Task.Attempt}
	} else {
		// A copy stored within the duplicate window is the one told.
		reason := exhaustedReason(a.Deliveries, early, t.Attempt)
		if stored, err = b.publishDead(ctx, q, t, keyed, a.StreamSeq, t.Attempt, reason); err != nil {
			return err
		}
	}
	if !foreign {
		// Claimed as dead-lettered (claim.go), as a DeadLetter claims its
		// message: a delivery of it whose Ack claimed it first (its ack
		// lost on the last delivery) settled it as a success.
		succeeded, err := b.claimExhausted(ctx, q, a.StreamSeq, raw.Time, t, keyed, stored.reason)
		if err != nil {
			return err
		}
		if succeeded {
			return b.exhaustedSucceeded(ctx, q, s, a.StreamSeq, t, prev == nil, stored.seq)
		}
	}
	t.Attempt = stored.attempts
	_ = adv.InProgress()
	b.tellDeadOnce(q, a.StreamSeq, queue.DeadLetter{Task: t, Reason: stored.reason, At: stored.at})
	if err := s.DeleteMsg(ctx, a.StreamSeq); err != nil && !isMsgNotFound(err) {
		return fmt.Errorf("delete message %d: %w", a.StreamSeq, err)
	}
	q.forgetMessage(a.StreamSeq)
	return nil
}

// exhaustedReason is the reason of the dead letter of a task the server
// stopped delivering after deliveries, early of which this process did
// not run (earlyOf: given back before the task's NotBefore, or skipped:
// delivered again while it held another delivery of the message, or left
// to the server when a lookup failed); attempts ran. Only a delivery
// that ran can have had its lease expire.
func exhaustedReason(deliveries uint64, early, attempts int) string {
	switch {
	case early == 0:
		return fmt.Sprintf("max deliveries (%d) exhausted: lease expired on the last delivery", deliveries)
	case attempts == 0:
		return fmt.Sprintf("max deliveries (%d) exhausted before the task's not-before time, or while none could be handed out "+
			"(delivered again while another delivery of it ran, or its lookups failed): it never ran", deliveries)
	}
	return fmt.Sprintf("max deliveries (%d) exhausted: %d ran, %d were not run (given back before the task's not-before time, "+
		"or not handed out: delivered again while another delivery of it ran, or its lookups failed)", deliveries, attempts, early)
}

// copyLookupMargin is how much earlier than the advisory a dead-letter
// copy made for it is looked for: the advisory and the dead-letter
// streams may have their leaders on servers whose clocks differ.
const copyLookupMargin = time.Minute

// storedCopy returns the dead letter stored before for the message seq
// (task id) of q's work stream, whose max-deliveries advisory is adv, or
// nil. Such a copy was stored by an earlier handling of adv, after it, or
// before it, during the message's last delivery: by a DeadLetter whose
// term was lost, or by Close's give-back, which leaves a task it
// dead-lettered to the server (releaseRefused); the server publishes the
// advisory once that delivery's AckWait ran out, up to an AckWait (and a
// settlement's publish: Config.PublishTimeout) after the copy. The server
// de-duplicates the copy by its Nats-Msg-Id (deadMsgID) within the
// dead-letter stream's duplicate window only: an advisory young enough
// that any such copy is less than half the window old (the other half is
// the margin for the clocks of host and server) is not looked up. An
// older one (its handling failed after the copy and is tried again, it
// waited for a process to read it, or the AckWait is long for the window)
// costs a headers-only scan of the queue's dead letters stored since an
// AckWait before the advisory (scanDeadHeadersFrom: a consumer created,
// read and deleted).
func (b *Backend) storedCopy(ctx context.Context, q *queueState, seq uint64, id string, adv jetstream.Msg) (*queue.DeadLetter, error) {
	before := b.cfg.AckWait + b.cfg.PublishTimeout // how much older than adv a copy made for its message can be
	md, err := adv.Metadata()
	if err == nil && time.Since(md.Timestamp)+before < b.cfg.DuplicateWindow/2 {
		return nil, nil
	}
	from := deadScanFrom{seq: 1} // the advisory's age unknown: every dead letter of the queue
	if err == nil {
		from = deadScanFrom{since: md.Timestamp.Add(-before - copyLookupMargin)}
	}
	return b.deadCopyOf(ctx, q, seq, id, from, 0)
}

// deadCopyOf returns the dead letter stored for the message seq (task id)
// of q's work stream among the queue's dead letters from from on, other
// than the one at sequence not of the dead-letter stream (0: none), or
// nil: a headers-only scan (scanDeadHeadersFrom) for the copy's
// Nats-Msg-Id (deadMsgID) and task id.
func (b *Backend) deadCopyOf(ctx context.Context, q *queueState, seq uint64, id string, from deadScanFrom, not uint64) (*queue.DeadLetter, error) {
	msgID := deadMsgID(q.stream, seq)
	var found *queue.DeadLetter
	err := b.scanDeadHeadersFrom(ctx, q.queueNames, from, func(s uint64, h nats.Header, d queue.DeadLetter) bool {
		if s != not && h.Get(hdrMsgID) == msgID && d.Task.ID == id {
			found = &d
			return false
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("look for the dead letter of message %d: %w", seq, err)
	}
	return found, nil
}

// claimExhausted claims the message seq of q's work stream, stored at
// stored, task t, as dead-lettered with reason (claim.go), for its
// max-deliveries advisory. It reports succeeded when a delivery of the
// message claimed it first as a success (an Ack whose ack was lost: the
// task is no dead letter). A claim lost to a dead letter (a DeadLetter
// whose term was lost, an earlier handling of the advisory) goes on as
// that dead letter; one lost to anything else fails, and the advisory is
// handled again later.
func (b *Backend) claimExhausted(ctx context.Context, q *queueState, seq uint64, stored time.Time, t *task.Task, keyed bool, reason string) (succeeded bool, err error) {
	r := &receipt{b: b, q: q, seq: seq, stored: stored.UnixNano(), keyed: keyed, task: *t}
	err = b.claim(ctx, r, task.DeadLettered, reason)
	if !errors.Is(err, errClaimLost) {
		return false, err
	}
	o, err := b.markedOutcome(ctx, q, t.Key, keyed)
	if err != nil {
		return false, fmt.Errorf("claim message %d: lost; read its marker: %w", seq, err)
	}
	switch o {
	case task.DeadLettered:
		return false, nil
	case task.Succeeded:
		return true, nil
	default:
		return false, fmt.Errorf("claim message %d: another settlement of it claimed it first (%q)", seq, o)
	}
}

// exhaustedSucceeded removes the message seq of q's work stream (s), task
// t, whose max-deliveries advisory found it claimed as a success
// (claimExhausted): the dead letter stored for it at deadSeq of the
// dead-letter stream is deleted when this handling stored it (stored; a
// copy found stored before, left by a DeadLetter whose claim was lost
// and whose delete failed, is left and logged), the message is deleted,
// and the task's source, if any, told it succeeded (as dropFinished
// does: the Ack that claimed it failed, and told no one).
func (b *Backend) exhaustedSucceeded(ctx context.Context, q *queueState, s jetstream.Stream, seq uint64, t *task.Task, stored bool, deadSeq uint64) error {
	fields := []zap.Field{zap.String("queue", q.queue), zap.String("task", t.ID), zap.Uint64("seq", seq)}
	if !stored {
		b.log.Warn("jetstream: exhausted task succeeded, but a dead letter of it is stored: it stays listed", fields...)
	} else if err := b.dead.DeleteMsg(ctx, deadSeq); err != nil && !isMsgNotFound(err) {
		return fmt.Errorf("delete dead letter %d of message %d, succeeded: %w", deadSeq, seq, err)
	}
	if err := s.DeleteMsg(ctx, seq); err != nil && !isMsgNotFound(err) {
		return fmt.Errorf("delete message %d, succeeded: %w", seq, err)
	}
	q.forgetMessage(seq)
	b.log.Info("jetstream: exhausted task not dead-lettered: a delivery of it succeeded (its ack was lost)", fields...)
	if t.Header(task.HeaderCompletion) != "" {
		b.toldFinished(t)
	}
	return nil
}
