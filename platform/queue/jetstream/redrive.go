package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

func idSet(ids []string) map[string]bool {
	if len(ids) == 0 {
		return nil
	}
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// Redrive republishes the selected dead letters to their queue as new
// messages (so they start again at attempt 1, ready now), records each
// one's key as queued again (done.go: the key's dead-letter marker would
// otherwise mark a duplicate emitted meanwhile as dead-lettered, and its
// source would be told an outcome the re-driven task has not had), then
// deletes them from the dead-letter stream. A crash between the steps may
// leave the old marker, which then marks a duplicate as the dead letter
// it was, or the dead letter beside its re-driven copy: the copy's next
// delivery deletes it (dropRedriven), and a Redrive of it before then
// stores no second copy (its Nats-Msg-Id, within the duplicate window)
// and deletes it.
//
// The count is of the copies this call stored: a dead letter whose copy
// the server already held (its publish acknowledged as a duplicate: two
// calls re-driving it at once, or a call repeating one that stopped
// before it deleted the dead letter) is deleted but not counted, so that
// a dead letter re-driven once is counted at most once (a call that
// stopped after the copy but before the delete did not count it either:
// it is still listed, and reported with errLeftBesideCopy, below). So is
// one whose copy
// the work stream holds when the call begins (queuedTasks: the copy's
// Nats-Msg-Id names the dead letter, stored by a re-drive that then
// failed, found past
// the duplicate window too, within the first maxFindScan messages): no
// second copy is queued.
//
// Each dead letter is claimed for a re-drive before its copy is stored
// (deadclaim.go): one a purge claimed within the duplicate window is left
// to it (errPurgeBegun), and a purge after the claim leaves it to this
// call, so that a dead letter re-driven is not also counted purged.
//
// A publish no stream answered (the work stream was deleted on the
// server) sets the queue up again, as Enqueue does (restore), once per
// call, and is tried once more.
//
// Dead letters that cannot be re-driven are left as they are, each
// reported in the error as a queue.DeadLetterError (also when a failure
// stops the call later: that failure is the error's last part, naming
// the task it stopped at, and no DeadLetterError), and the others
// re-driven: one whose key is recorded as
// succeeded since (errSucceededSince), one that does not decode
// (errNotADeadLetter), one that lost part of its task (errNotKept), one
// a purge claimed (errPurgeBegun), and one whose copy the server would
// refuse as too large (queue.ErrTooLarge: stored by someone else). The
// dead letter a failure stopped the call at after its copy was in the
// work stream (the marker or the delete failed) is reported too, with
// errLeftBesideCopy: its task is queued again, and the copy's delivery
// deletes it; so is one whose copy's publish got no answer, with
// queue.ErrOutcomeUnknown: the server may have stored the copy. The stop
// is the reason of those after it.
func (b *Backend) Redrive(ctx context.Context, queueName string, ids ...string) (int, error) {
	if err := b.usable(); err != nil {
		return 0, err
	}
	q, err := b.queue(queueName)
	if err != nil {
		return 0, err
	}
	var picked []deadMsg
	set := idSet(ids)
	if err := b.scanDead(ctx, q.queueNames, func(m deadMsg) bool {
		if set == nil || set[m.dl.Task.ID] {
			picked = append(picked, m)
		}
		return true
	}); err != nil {
		return 0, err
	}
	if len(picked) == 0 {
		return 0, nil
	}
	if err := q.ensure(ctx, b); err != nil {
		return 0, err
	}
	dead, err := b.lookupDead(ctx)
	if err != nil {
		return 0, err
	}
	// A dead letter whose task is queued already (a copy stored by a
	// re-drive that then failed, past the window of its Nats-Msg-Id) is
	// not queued again.
	queued, err := b.queuedTasks(ctx, q.queueNames, picked)
	if err != nil {
		return 0, fmt.Errorf("jetstream: redrive to %q: look for copies queued already: %w", q.queue, err)
	}
	n := 0
	var skipped []error
	restored := false // the queue was set up again (publishWork)
	for _, m := range picked {
		t := m.dl.Task
		if m.bad != nil {
			// A stand-in for what is stored: re-driven, it would not
			// decode either, and what it lost would be gone.
			skipped = append(skipped, leftDead("redrive to", q.queue, t.ID, fmt.Errorf("%w (%w)", errNotADeadLetter, m.bad)))
			continue
		}
		if dropped := m.raw.Header.Get(HeaderDeadDropped); dropped != "" {
			// Re-driven, it would run without what it lost.
			skipped = append(skipped, leftDead("redrive to", q.queue, t.ID, fmt.Errorf("the dead letter does not keep its %s: %w", dropped, errNotKept)))
			continue
		}
		t.Attempt, t.NotBefore = 0, time.Time{}
		// Remembered as a producer's key once re-driven (below), its
		// copy's id starts as one's does.
		msgID := msgIDOf(t.Key, false) + redriveMark + strconv.FormatUint(m.seq, 10)
		// The marker the key has now (the dead letter's, when within
		// the window), which the re-driven task's own settlement may
		// replace as soon as it is published.
		prev, succeeded, err := b.doneMarker(ctx, q, t.Key, true)
		if err != nil {
			return n, errors.Join(append(skipped, stopped("redrive to", q.queue, "at", t.ID, err))...)
		}
		if succeeded {
			// The task ran again after its dead letter and succeeded (a
			// re-drive that stopped before it deleted the dead letter, or
			// a dead letter stored by an earlier version whose work
			// message was not terminated): re-driving would run it once
			// more. Left as it is, and said.
			skipped = append(skipped, leftDead("redrive to", q.queue, t.ID, errSucceededSince))
			continue
		}
		// Re-driven by an operator, the task is remembered by its key
		// once it finishes, whoever chose the key.
		pm := encodeTask(t, msgSpec{subject: q.subject, msgID: msgID, keyed: true})
		if hs := headerSize(pm.Header); hs > maxHeaderBlock || hs+int64(len(pm.Data)) > b.MaxPayload() {
			// Only a dead letter this backend did not store (Enqueue
			// leaves room for the copy): the server would refuse it
			// every time, and stop the dead letters after it.
			skipped = append(skipped, leftDead("redrive to", q.queue, t.ID, fmt.Errorf("its copy of %d bytes (%d of headers) exceeds what the server stores (max_payload %d, %d of headers): %w",
				hs+int64(len(pm.Data)), hs, b.MaxPayload(), maxHeaderBlock, queue.ErrTooLarge)))
			continue
		}
		if err := ctx.Err(); err != nil {
			return n, errors.Join(append(skipped, stopped("redrive to", q.queue, "before", t.ID, err))...)
		}
		// Claimed for a re-drive before its copy (deadclaim.go), so
		// that a purge of it meanwhile does not count it purged.
		ok, err := b.claimDead(ctx, q.queueNames, m, claimRedrive)
		if err != nil {
			return n, errors.Join(append(skipped, stopped("redrive to", q.queue, "at", t.ID, err))...)
		}
		if !ok {
			skipped = append(skipped, leftDead("redrive to", q.queue, t.ID, errPurgeBegun))
			continue
		}
		stored, own, err := b.redriveOne(ctx, q, dead, m.seq, t.Key, prev, pm, &restored, queued[m.seq])
		if err != nil {
			if own != nil {
				// Its task is (or may be) queued again: said as its own
				// reason, not left to the stop's, "not re-driven".
				skipped = append(skipped, leftDead("redrive to", q.queue, t.ID, own))
			}
			return n, errors.Join(append(skipped, stopped("redrive to", q.queue, "at", t.ID, err))...)
		}
		if !stored {
			// Another call stored the copy: one re-driving this dead
			// letter at the same time, or an earlier one that stopped
			// before it deleted the dead letter (its copy found queued,
			// or acknowledged as a duplicate). This one queued nothing,
			// and does not count it (finishing that call's steps above).
			continue
		}
		n++
	}
	return n, errors.Join(skipped...)
}

// redriveOne stores pm, the copy of the dead letter at seq of dead, in
// q's work stream (unless queued: a copy stored before is in the work
// stream), records key (whose marker was at prev) as queued again and
// deletes the dead letter, and reports whether it stored the copy (not a
// duplicate of one stored before). With an error, own is the dead
// letter's reason when its task is or may be queued again all the same:
// the marker or the delete failed after the copy was in the work stream
// (errLeftBesideCopy), or the copy's publish got no answer
// (queue.ErrOutcomeUnknown: the server may have stored it). Once begun,
// the steps run to their end even when ctx ends (the caller gone: an
// operator's request cancelled), each within Config.PublishTimeout and
// while connected (serverContext): cut short by ctx, the copy's outcome
// was unknown or the dead letter stayed listed beside its queued copy,
// the re-drive reported failed, and a re-drive of it once the duplicate
// window had passed queued the task a second time.
func (b *Backend) redriveOne(ctx context.Context, q *queueState, dead jetstream.Stream, seq uint64, key string, prev uint64,
	pm *nats.Msg, restored *bool, queued bool) (stored bool, own, err error) {
	ctx = context.WithoutCancel(ctx)
	if !queued {
		pctx, stop := b.serverContext(ctx)
		ack, err := b.publishWork(pctx, q, pm, restored)
		stop()
		if err != nil {
			if unknownCopy(err) {
				own = fmt.Errorf("its copy's publish got no answer: %w (%w): its task may be queued again (a re-drive of it within the duplicate window stores no second copy)", err, queue.ErrOutcomeUnknown)
			}
			return false, own, err
		}
		stored = !ack.Duplicate
	}
	fctx, stop := b.serverContext(ctx)
	defer stop()
	if err := b.markQueuedAgain(fctx, q, key, prev); err != nil {
		return false, fmt.Errorf("%w: %w", errLeftBesideCopy, err), err
	}
	if err := dead.DeleteMsg(fctx, seq); err != nil && !isMsgNotFound(err) {
		err = fmt.Errorf("delete its dead letter: %w", err)
		return false, fmt.Errorf("%w: %w", errLeftBesideCopy, err), err
	}
	return stored, nil, nil
}

// unknownCopy reports whether err, what publishWork answered, leaves
// open whether the server stored the copy: a server's answer (an API
// error: a refusal, a full stream) says it stored nothing, and so does
// no stream answering (no responders); anything else (the answer timed
// out, the connection was lost before it came) may have followed a
// stored copy, as for an Enqueue (pubAckError).
func unknownCopy(err error) bool {
	var apiErr *jetstream.APIError
	return !errors.As(err, &apiErr) && !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders)
}

// publishWork publishes m to q's work stream and returns the server's
// ack. A publish no stream answered (the work stream was deleted on the
// server) sets q up again (restore) and is tried once more, when
// *restored is false; *restored is then set, so that a caller publishing
// several messages sets the queue up at most once. m must carry a
// Nats-Msg-Id when the second publish may repeat a first one the server
// stored.
func (b *Backend) publishWork(ctx context.Context, q *queueState, m *nats.Msg, restored *bool) (*jetstream.PubAck, error) {
	ack, err := b.js.PublishMsg(ctx, m)
	if *restored || !errors.Is(err, jetstream.ErrNoStreamResponse) {
		return ack, err
	}
	*restored = true
	var rerr error
	if len(b.restore(ctx, []*queueState{q}, []int{0}, func(_ int, err error) { rerr = err })) == 0 {
		return nil, fmt.Errorf("%w; setting queue %q up again: %w", err, q.queue, rerr)
	}
	return b.js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
}

// errSucceededSince is why Redrive leaves a dead letter whose task's key
// has finished succeeded since.
var errSucceededSince = errors.New("its key is recorded as succeeded since it was dead-lettered: not re-driven (it would run again; purge the dead letter)")

// errNotADeadLetter is why Redrive leaves a message of the dead-letter
// stream that does not decode as a dead letter (published there by
// someone else, or damaged).
var errNotADeadLetter = errors.New("not a dead letter this backend can decode: not re-driven (purge it)")

// errLeftBesideCopy is why Redrive leaves a dead letter whose copy is in
// the work stream when the call stopped before it deleted the dead
// letter (the key's marker or the delete failed): its task is queued
// again, and the copy's delivery deletes the dead letter (dropRedriven).
var errLeftBesideCopy = errors.New("re-driven, its task queued again, but its dead letter not deleted (the re-driven task's delivery deletes it)")

// errNotKept is why Redrive leaves a dead letter that could not keep all
// of its task (HeaderDeadDropped).
var errNotKept = errors.New("not re-driven: it would run without what its dead letter does not keep (purge the dead letter)")

// redriveMark stands in the Nats-Msg-Id of a re-driven copy between its
// key and the sequence of the dead letter it was re-driven from.
const redriveMark = "-redrive-"

// redrivenFrom returns the dead-letter sequence that msgID, a re-driven
// copy's Nats-Msg-Id, names, if it is one.
func redrivenFrom(msgID string) (uint64, bool) { return markedSeq(msgID, redriveMark) }

// markedSeq returns the sequence after the last mark in msgID, a copy's
// Nats-Msg-Id (redriveMark, releaseMark), if it has one.
func markedSeq(msgID, mark string) (uint64, bool) {
	i := strings.LastIndex(msgID, mark)
	if i < 0 {
		return 0, false
	}
	seq, err := strconv.ParseUint(msgID[i+len(mark):], 10, 64)
	return seq, err == nil
}

// dropRedriven deletes the dead letter at seq that t's message was
// re-driven from, if it is still there. Redrive deletes it right after it
// stored the copy; a process that died in between left a dead letter of a
// task that is queued again, and may succeed: listed as dead, re-driven
// again by an operator, counted in Stats.Dead. The copy's next delivery
// (its first, or a later one when the first was prefetched by a process
// that died) finishes that step. Only t's own dead letter is deleted (its queue's
// subject and t's id): a key that ends like a re-driven copy's id names a
// sequence that is not its. It reports whether that dead letter is gone
// (or was never t's); a failure is logged, leaves the dead letter as
// Redrive left it, and reports false. It runs within ctx (the Lease's), at
// most Config.PublishTimeout and while connected.
func (b *Backend) dropRedriven(ctx context.Context, q *queueState, t *task.Task, seq uint64) bool {
	ctx, stop := b.serverContext(ctx)
	defer stop()
	err := func() error {
		dead, err := b.lookupDead(ctx)
		if err != nil {
			return err
		}
		m, err := dead.GetMsg(ctx, seq)
		if isMsgNotFound(err) || errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil // gone, or its stream deleted since lookupDead, and it with it
		}
		if err != nil {
			return err
		}
		if m.Subject != q.deadSubject {
			return nil
		}
		if dl, err := decodeDead(m.Header, nil, q.queue); err != nil || dl.Task.ID != t.ID {
			return nil
		}
		if err := dead.DeleteMsg(ctx, seq); err != nil && !isMsgNotFound(err) {
			return err
		}
		b.log.Info("jetstream: dead letter left by an interrupted redrive deleted", zap.String("queue", q.queue),
			zap.String("task", t.ID), zap.Uint64("dead_seq", seq))
		return nil
	}()
	if err != nil {
		b.log.Warn("jetstream: re-driven task not handed out: the dead letter it was re-driven from could not be deleted (delivered again later)",
			zap.String("queue", q.queue), zap.String("task", t.ID), zap.Uint64("dead_seq", seq), zap.Error(err))
		return false
	}
	return true
}

// leftDead is the part of a Redrive's or Purge's error (op "redrive to",
// "purge of") that reports the dead letter of queueName whose task is id
// left as it was, for err, a reason of its own: a queue.DeadLetterError,
// which the caller finds by errors.As.
func leftDead(op, queueName, id string, err error) error {
	return fmt.Errorf("jetstream: %s %q: %w", op, queueName, &queue.DeadLetterError{ID: id, Err: err})
}

// stopped is the last part of a Redrive's or Purge's error when err
// stopped it at (or before) the dead letter whose task is id: no
// queue.DeadLetterError, as it is the reason of every dead letter the
// call did not reach too.
func stopped(op, queueName, where, id string, err error) error {
	return fmt.Errorf("jetstream: %s %q stopped %s task %s: %w", op, queueName, where, id, err)
}
