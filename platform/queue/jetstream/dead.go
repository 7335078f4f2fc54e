package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// ensureDeadStream creates or updates the dead-letter stream
// <prefix>_DEAD (limits retention, one subject per queue), bounded by
// Config.Dead. Its discard policy is "new": the server refuses a dead
// letter that does not fit, and publishDead discards the oldest to make
// room, counting each one (the server would discard them silently).
//
// A stream that already holds more than the bounds allow (a host
// upgraded from unbounded dead letters, or bounds lowered) is brought
// within them first, the same way, so the server does not trim it
// silently when the bounds are applied.
func (b *Backend) ensureDeadStream(ctx context.Context) error {
	keys := streamKeys{dup: "duplicate_window", age: "dead.max_age", bytes: "dead.max_bytes", msgs: "dead.max_msgs"}
	if s, err := lookupStream(ctx, b.js, b.names.deadStream()); err == nil {
		// Checked first: a host whose bounds differ discards nothing.
		if err := b.agreeStream(ctx, b.deadStreamConfig(), keys); err != nil {
			return err
		}
		b.dead = s
		st := s.CachedInfo().State
		for over := b.deadOver(st); over; over = b.deadOver(st) {
			if err := b.discardOldestDead(ctx); err != nil {
				return fmt.Errorf("jetstream: bring %q within dead.max_bytes and dead.max_msgs: %w", b.names.deadStream(), err)
			}
			info, err := s.Info(ctx)
			if err != nil {
				return fmt.Errorf("jetstream: stream %q: %w", b.names.deadStream(), err)
			}
			st = info.State
		}
	}
	s, err := b.setUpStream(ctx, b.deadStreamConfig(), keys)
	if errors.Is(err, ErrSettingsDiffer) {
		return err
	}
	if err != nil {
		return fmt.Errorf("jetstream: create stream %q: %w", b.names.deadStream(), replicasProblem(err, b.cfg.Replicas))
	}
	b.dead = s
	return nil
}

// deadStreamConfig is the configuration of the dead-letter stream.
func (b *Backend) deadStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        b.names.deadStream(),
		Description: "plba dead letters",
		Subjects:    []string{b.names.deadSubjects()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     b.storage(),
		Replicas:    b.cfg.Replicas,
		Duplicates:  b.cfg.DuplicateWindow,
		MaxAge:      b.cfg.Dead.MaxAge,
		MaxBytes:    b.cfg.Dead.MaxBytes,
		MaxMsgs:     b.cfg.Dead.MaxMsgs,
		Discard:     jetstream.DiscardNew,
	}
}

// deadMsgID de-duplicates copies of one stored message into the dead
// letter, made by several replicas or by a retried settlement.
func deadMsgID(stream string, seq uint64) string {
	return "dead-" + stream + "-" + strconv.FormatUint(seq, 10)
}

// publishDead stores a copy of t with reason in the dead-letter stream,
// waits for the server's acknowledgement and returns what the dead letter
// stored for the message says (its reason, time and attempts): what the
// watcher and the key's marker are to be told, as operators see it
// listed. A copy no stream answered is published once more after the
// streams were set up again (restore.go); one without an answer within
// Config.PublishTimeout is sent again (publishAnswered).
//
// The copy's Nats-Msg-Id (deadMsgID) makes the server drop a second copy
// of the same message within the stream's duplicate window, silently:
// the acknowledgement says Duplicate and gives the sequence of the copy
// stored before (a DeadLetter whose term was lost, then the server's
// max-deliveries advisory for the same message; a retried handling).
// That copy is read back (storedDead, within ctx) and its reason, time
// and attempts returned, not this call's; when the read fails, that is
// logged and this call's are returned.
//
// When the dead-letter stream is full (Config.Dead.MaxBytes or MaxMsgs),
// the oldest dead letters are deleted until the new one fits; each is
// counted in Status.DeadDiscarded and its queue's Stats.DeadDiscarded,
// and logged.
func (b *Backend) publishDead(ctx context.Context, q *queueState, t *task.Task, keyed bool, seq uint64, attempts int, reason string) (deadInfo, error) {
	info := deadInfo{reason: sanitizeValue(reason), at: time.Now(), attempts: attempts}
	msgID := deadMsgID(q.stream, seq)
	m := encodeDead(t, q.deadSubject, msgID, keyed, info)
	if limit := b.MaxPayload(); limit > 0 && msgSize(m) > limit || headerSize(m.Header) > maxHeaderBlock {
		m, info = fitDead(t, q.deadSubject, msgID, keyed, info, limit)
	}
	restored := false
	for {
		ack, err := b.publishAnswered(ctx, m, "dead-letter copy")
		if err == nil {
			info.seq = ack.Sequence
			if !ack.Duplicate {
				return info, nil
			}
			info.before = true
			stored, err := b.storedDead(ctx, ack.Sequence, msgID)
			if err != nil {
				b.log.Warn("jetstream: dead letter stored before for the task could not be read: its reason and time as this copy's",
					zap.String("queue", q.queue), zap.String("task", t.ID), zap.Uint64("seq", seq),
					zap.Uint64("dead_seq", ack.Sequence), zap.Error(err))
				return info, nil
			}
			stored.seq, stored.before = ack.Sequence, true
			return stored, nil
		}
		if storeGone(err) && !restored {
			// No stream answered: set it up again, then once more (the
			// Nats-Msg-Id makes the copy count once).
			restored = true
			if rerr := b.awaitRestore(ctx); rerr != nil {
				return deadInfo{}, fmt.Errorf("jetstream: dead-letter task %s of %q: %w; setting the stream up again: %w", t.ID, q.queue, err, rerr)
			}
			m = &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
			continue
		}
		if !isStreamFull(err) {
			return deadInfo{}, fmt.Errorf("jetstream: dead-letter task %s of %q: %w", t.ID, q.queue, err)
		}
		if derr := b.discardOldestDead(ctx); derr != nil {
			return deadInfo{}, fmt.Errorf("jetstream: dead-letter task %s of %q: %w; making room: %w", t.ID, q.queue, err, derr)
		}
	}
}

// fitDead builds the dead-letter copy of t, whose full copy exceeds
// limit (the server's max_payload) or the headers JetStream stores
// (maxHeaderBlock), with what fits: without its payload, or without its
// headers, or without both, and says so in the reason and in
// HeaderDeadDropped: a message published by someone else, larger than
// Enqueue allows, is dead-lettered with what fits rather than never
// (the server refuses the copy every time). A copy that does not fit
// even then (an id, kind or key too large) is returned as it is;
// publishing it fails.
func fitDead(t *task.Task, subject, msgID string, keyed bool, info deadInfo, limit int64) (*nats.Msg, deadInfo) {
	var m *nats.Msg
	for _, dropped := range [...]string{"payload", "headers", "payload headers"} {
		c := *t
		var note string
		switch dropped {
		case "payload":
			c.Payload = nil
			note = fmt.Sprintf(" (its payload of %d bytes is not kept: with the dead letter's headers it exceeds the server's max_payload of %d bytes)", len(t.Payload), limit)
		case "headers":
			c.Headers = nil
			note = fmt.Sprintf(" (its headers are not kept: with the dead letter's own they exceed what the server stores (%d bytes of headers, %d in all))", maxHeaderBlock, limit)
		default:
			c.Payload, c.Headers = nil, nil
			note = fmt.Sprintf(" (its payload of %d bytes and its headers are not kept: with the dead letter's headers they exceed what the server stores (%d bytes of headers, %d in all))", len(t.Payload), maxHeaderBlock, limit)
		}
		d := info
		d.reason = info.reason[:min(len(info.reason), maxReason-len(note))] + note
		m = encodeDead(&c, subject, msgID, keyed, d)
		m.Header[HeaderDeadDropped] = []string{dropped}
		if (limit <= 0 || msgSize(m) <= limit) && headerSize(m.Header) <= maxHeaderBlock {
			return m, d
		}
	}
	return m, info
}

// storedDead reads the reason, time and attempts of the dead letter at
// sequence seq of the dead-letter stream, which must be the copy whose
// Nats-Msg-Id is msgID (a copy re-driven or purged since is gone).
func (b *Backend) storedDead(ctx context.Context, seq uint64, msgID string) (deadInfo, error) {
	raw, err := b.dead.GetMsg(ctx, seq)
	if err != nil {
		return deadInfo{}, fmt.Errorf("read dead letter %d: %w", seq, err)
	}
	if id := raw.Header.Get(hdrMsgID); id != msgID {
		return deadInfo{}, fmt.Errorf("dead letter %d is %q, not %q", seq, id, msgID)
	}
	dl, err := decodeDead(raw.Header, raw.Data, "")
	if err != nil {
		return deadInfo{}, fmt.Errorf("decode dead letter %d: %w", seq, err)
	}
	return deadInfo{reason: dl.Reason, at: dl.At, attempts: dl.Task.Attempt}, nil
}

// deadOver reports whether st holds more than Config.Dead allows.
func (b *Backend) deadOver(st jetstream.StreamState) bool {
	d := b.cfg.Dead
	return d.MaxBytes > 0 && st.Bytes > uint64(d.MaxBytes) || d.MaxMsgs > 0 && st.Msgs > uint64(d.MaxMsgs)
}

// discardOldestDead deletes the oldest dead letter to make room for a new
// one, and counts it: in Status.DeadDiscarded and in the Stats of its
// queue (deadDiscardedOf), which its subject names. It is read first,
// for its queue and the log; one that cannot be read is deleted all the
// same (dead-lettering must not stop on it), logged with the error, and
// counted in Status.DeadDiscarded only: its queue is not known. One
// another host deleted first is that host's to count.
func (b *Backend) discardOldestDead(ctx context.Context) error {
	info, err := b.dead.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs == 0 {
		return errors.New("the dead-letter stream is empty and still refuses it (dead.max_bytes smaller than one dead letter?)")
	}
	first := info.State.FirstSeq
	raw, gerr := b.dead.GetMsg(ctx, first)
	if err := b.dead.DeleteMsg(ctx, first); err != nil && !isMsgNotFound(err) {
		return err
	} else if err != nil {
		return nil // another host deleted it first: it counts it
	}
	var qn, subject string
	known := false
	if gerr == nil {
		subject = raw.Subject
		qn, known = b.names.queueOfDeadSubject(subject)
	}
	total := b.countDiscard(qn, known)
	fields := []zap.Field{zap.Uint64("seq", first), zap.Uint64("discarded_total", total)}
	switch {
	case gerr != nil:
		fields = append(fields, zap.NamedError("read_error", gerr))
	case !known:
		fields = append(fields, zap.String("subject", subject))
	default:
		fields = append(fields, zap.String("queue", qn))
		if dl, err := decodeDead(raw.Header, raw.Data, qn); err == nil {
			fields = append(fields, zap.String("task", dl.Task.ID), zap.String("reason", dl.Reason))
		}
	}
	b.log.Warn("jetstream: dead-letter stream full (dead.max_bytes / dead.max_msgs): oldest dead letter discarded", fields...)
	return nil
}

// countDiscard counts a dead letter discarded to make room, for queue
// qn when known (not when it could not be read, or its subject names no
// queue: published there by another program), and returns the total.
func (b *Backend) countDiscard(qn string, known bool) uint64 {
	if known {
		b.discardMu.Lock()
		if b.discardedBy == nil {
			b.discardedBy = make(map[string]int64)
		}
		b.discardedBy[qn]++
		b.discardMu.Unlock()
	}
	return b.deadDiscarded.Add(1)
}

// deadDiscardedOf returns the dead letters of queue qn this process
// discarded to make room since it started (queue.Stats.DeadDiscarded).
func (b *Backend) deadDiscardedOf(qn string) int64 {
	b.discardMu.Lock()
	defer b.discardMu.Unlock()
	return b.discardedBy[qn]
}

// DeadLetter copies d's task with reason (and its headers and attempt
// count) to the dead-letter stream, then terminates the delivery, which
// removes it from the work queue. If the copy fails, the error is
// returned and d is left to the server (see failedIf). The copy is
// bounded by d's lease, renewed meanwhile (receipt.keep): cut short by
// its end, DeadLetter fails with queue.ErrLeaseLost (leaseCut); when the
// server's AckWait ran out unrenewed before the term, the copy is stored
// but DeadLetter fails with queue.ErrLeaseLost (receipt.lastWord).
// d.DeadReason is set to the reason stored: a copy stored before for the
// same message keeps its own (publishDead).
func (b *Backend) DeadLetter(ctx context.Context, d *queue.Delivery, reason string) error {
	r, err := b.receiptOf(d)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin(); err != nil {
		return err
	}
	ctx, cancel := r.settleCtx(ctx)
	defer cancel()
	return r.failedIf(leaseCut(ctx, b.deadLetterLocked(ctx, r, r.attempt, reason)))
}

// deadLetterLocked is DeadLetter's work, the dead letter recording
// attempts (r.attempt when the delivery ran). r.mu held.
func (b *Backend) deadLetterLocked(ctx context.Context, r *receipt, attempts int, reason string) error {
	if err := b.storeDeadLocked(ctx, r, attempts, reason); err != nil {
		return err
	}
	if err := r.lastWord("dead-letter"); err != nil {
		// The copy is stored: the delivery the server makes now finds it
		// and finishes as that dead letter (redelivered.go), unless it was
		// made before the copy was stored.
		return fmt.Errorf("%w (its dead letter is stored)", err)
	}
	if err := b.term(r.msg, reason); err != nil {
		return fmt.Errorf("jetstream: terminate task %s: %w", r.del.Task.ID, err)
	}
	r.finishGone()
	return nil
}

// storeDeadLocked stores r's dead letter (attempts, reason), sets
// d.DeadReason to the reason stored and claims r's message as
// dead-lettered (claim.go: its key's marker records it), without
// settling r. A claim another delivery of the message won first ends r
// (claimLost): its dead letter is deleted again unless that delivery
// dead-lettered the task too and stored the same copy (dropLostDead).
// r.mu held.
func (b *Backend) storeDeadLocked(ctx context.Context, r *receipt, attempts int, reason string) error {
	stored, err := b.publishDead(ctx, r.q, r.del.Task, r.keyed, r.seq, attempts, reason)
	if err != nil {
		return err
	}
	r.del.DeadReason = stored.reason // an earlier copy's, or this one's as stored
	if err := b.claim(ctx, r, task.DeadLettered, stored.reason); err != nil {
		if errors.Is(err, errClaimLost) {
			b.dropLostDead(ctx, r, stored)
			return b.claimLost(r, "dead-letter", err)
		}
		return err
	}
	return nil
}

// term terminates m: the server stops delivering it and, for a work
// queue, deletes it. The reason goes with it where the server reads one
// (its term advisory shows it): a server before 2.10.4 compares the
// whole ack with "+TERM", so "+TERM <reason>" is no term for it, the
// message stays pending and is delivered again after AckWait (a dead
// letter handled once more and told to its source again). Servers before
// 2.11 get a plain term; the dead letter keeps the reason either way.
func (b *Backend) term(m jetstream.Msg, reason string) error {
	if b.termWhy {
		return m.TermWithReason(sanitizeValue(reason))
	}
	return m.Term()
}

// poison moves a message that is not a task to the dead letter. The copy
// is published within ctx (the Lease's, or Close's give-back), at most
// Config.PublishTimeout and while connected: during an outage it fails at
// once rather than hold a Lease, and with it a stopping pool, for the
// publish timeout of each such message. The message is then left to the
// server, which delivers it again after its AckWait.
func (b *Backend) poison(ctx context.Context, q *queueState, m jetstream.Msg, md *jetstream.MsgMetadata, cause error) {
	b.log.Warn("jetstream: undecodable message dead-lettered", zap.String("queue", q.queue),
		zap.Uint64("seq", md.Sequence.Stream), zap.Error(cause))
	t := foreignStandIn(q.queue, md.Sequence.Stream, m.Headers(), m.Data(), md.Timestamp)
	pctx, stop := b.serverContext(ctx)
	defer stop()
	stored, err := b.publishDead(pctx, q, t, false, md.Sequence.Stream, int(md.NumDelivered), cause.Error())
	if err != nil {
		b.log.Error("jetstream: dead-letter undecodable message", zap.Error(err))
		return // it is redelivered later
	}
	t.Attempt = stored.attempts
	b.toldDead(queue.DeadLetter{Task: t, Reason: stored.reason, At: stored.at})
	_ = b.term(m, "not a task")
}
