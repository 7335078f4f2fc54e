package imap

import (
	"context"
	"crypto/sha256"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/emersion/go-imap/v2"

	"github.com/plba/plba/platform/task"
)

// Bounds of the completion queue.
const (
	// maxCompletionBatch is the most completions applied together (one
	// UID STORE and one UID MOVE per action for all of them).
	maxCompletionBatch = 1000
	// maxQueuedCompletions is how many completions may wait before
	// Complete waits (at most queueWait) for room.
	maxQueuedCompletions = 100_000
	// queueWait bounds how long Complete waits for room in a full queue;
	// after it the completion is queued all the same (a request holds no
	// payload, so the queue stays small).
	queueWait = 5 * time.Second
	// completionTimeout bounds one batch (after the dial timeout); the
	// batches after one cut by it are smaller (see completer.limit).
	completionTimeout = 30 * time.Second
	// drainTimeout bounds the last attempt Close makes to apply the
	// completions still queued.
	drainTimeout = 5 * time.Second
	// settleRounds is how many times one completion applies its action
	// while further copies of its message keep turning up; copies found
	// after the last round are scanned again.
	settleRounds = 3
)

// compReq is one queued completion: what to do to the message behind a
// task. It holds the task's headers and key, not its payload (only the
// payload's hash and size, to find the message by content after a
// UIDVALIDITY change).
type compReq struct {
	t       *task.Task // payload-less clone
	sum     [sha256.Size]byte
	size    int
	outcome task.Outcome
	reason  string
	seen    bool
	moveTo  string
	// round counts the applications (settleRounds); failures the
	// server's refusals of this request alone, which delay it (notBefore)
	// without holding up the others.
	round     int
	failures  int
	notBefore time.Time
	// settled is the copies of the message the batch included, set by
	// the loop when it applies the request; found whether an application
	// acted on the request's message (or a copy): sent a command for it
	// that the server did not refuse unchanged (see acting).
	settled dupe
	found   bool
	// copySent: an application moved the message without MOVE and
	// failed after its COPY was sent; the next one looks for the copy
	// there before it copies again (see copiesFound).
	copySent *copyMark
}

func (r *compReq) act() bool { return r.seen || r.moveTo != "" }

// uid returns the message's UID and UIDVALIDITY from the task's headers
// (zero when absent).
func (r *compReq) uid() (imap.UID, uint32) {
	u, _ := strconv.ParseUint(r.t.Header(HeaderUID), 10, 32)
	v, _ := strconv.ParseUint(r.t.Header(HeaderUIDValidity), 10, 32)
	return imap.UID(u), uint32(v)
}

// Complete queues the completion of t's message and returns: the source
// applies it on its own, so a handled task never waits for, nor fails
// with, the mail server. On task.Succeeded the message is flagged \Seen
// and/or moved to OnSuccess.MoveTo; on task.DeadLettered it is moved to
// OnFailure.MoveTo (folders are created when missing). Other outcomes are
// ignored.
//
// A completion loop owned by the source applies the queue in batches as
// large as the backlog (one UID STORE and one UID MOVE per action for many
// messages) on its own connection, on which it selects the mailbox again
// before it looks for the messages (the SELECT syncs the session's view,
// and it is the mailbox's current UIDVALIDITY the task's is compared
// with). The completions of one task (a dead letter re-driven, a
// completion told twice) are never in one batch: they are applied one
// after the other, so that a success told after the dead letter finds
// the mail where the dead letter put it. A failed batch is
// retried with the reconnect back-off without limit, counted in
// Status.CompletionFailures and logged once per batch.
//
// The message is found by the UID in t's headers while the mailbox
// UIDVALIDITY still matches, else by content (see findByContent): its
// Message-ID (an exact match) and the same bytes when t carries its
// payload, or, when it has no Message-ID that a search finds as it is,
// the same bytes among the messages of about its size; for a stand-in without payload, its
// Message-ID and size (imap-size), and nothing is moved when several
// mails match (the scan emits them again). A message that is no longer
// there was handled already, so completion is idempotent, except that
// the mail of a task that succeeded (re-driven after its dead letter) is
// looked for in OnFailure.MoveTo too, by content, and moved on to
// OnSuccess.MoveTo (flagged \Seen and moved back to the mailbox when
// OnSuccess.MoveTo is empty). Further copies of the message (same task key) that
// the source saw but did not emit are settled the same way.
//
// Until it is applied the message stays in flight: it is not emitted
// again. If the process ends first, the message is still in the mailbox
// and is emitted again after a restart; the handler must be idempotent
// per message. Complete waits only when maxQueuedCompletions are queued
// (for room, at most a few seconds or until ctx ends). It returns
// ErrClosed after Close, and nil otherwise. Use WaitCompletions to wait
// until the queue is applied.
func (s *Source) Complete(ctx context.Context, t *task.Task, o task.Outcome, reason string) error {
	if !o.Final() || t == nil {
		return nil
	}
	r := &compReq{t: t.Clone(), outcome: o, reason: reason, size: len(t.Payload)}
	if len(t.Payload) > 0 {
		r.sum = sha256.Sum256(t.Payload)
	}
	r.t.Payload = nil
	if o == task.Succeeded {
		r.seen, r.moveTo = *s.cfg.OnSuccess.Seen, *s.cfg.OnSuccess.MoveTo
	} else {
		r.moveTo = *s.cfg.OnFailure.MoveTo
	}
	if !r.act() {
		s.finish(r)
		return nil
	}
	return s.comp.enqueue(ctx, s, r)
}

// finish ends a completion whose action was applied (or that has none):
// it settles the copies recorded meanwhile (another round, up to
// settleRounds) or forgets the message, which from now on is a message of
// its own if it turns up again.
func (s *Source) finish(r *compReq) (again bool) {
	key := r.t.Key
	s.mu.Lock()
	if left := s.forgetSettled(key, r.settled); r.act() && len(left) > 0 && r.round < settleRounds {
		s.mu.Unlock()
		return true // copies recorded meanwhile: settle them too
	}
	uid, validity := r.uid()
	if r.act() {
		s.finishedUIDs(validity, append([]imap.UID{uid}, r.settled.uids...), time.Now())
	} else if validity == s.uidValidity {
		s.leftInPlace(uid) // dead-lettered, no folder to move it to
	}
	delete(s.inflight, key)
	s.dropDupes(key, r.act())
	s.st.InFlight = len(s.inflight)
	switch {
	case r.act() && !r.found:
		// Told twice, finished elsewhere, or the mail moved or removed by
		// another client since it was emitted: nothing done.
		s.st.CompletedAgain++
	case r.outcome == task.Succeeded:
		s.st.CompletedOK++
	default:
		s.st.CompletedFailed++
	}
	s.mu.Unlock()
	if r.outcome == task.Succeeded && r.act() && !r.found {
		s.log.Info("the mail of a task that succeeded is no longer in the mailbox: not flagged nor moved (moved or removed by another client, or its task's outcome told twice)",
			zap.String("uid", r.t.Header(HeaderUID)), zap.String("message_id", r.t.Header(HeaderMessageID)))
	}
	if r.outcome == task.DeadLettered {
		// The dead letter itself was logged at warn where it was made (the
		// pool); this line says where its mail went.
		switch {
		case r.found:
			s.log.Info("message moved after its dead letter", zap.String("uid", r.t.Header(HeaderUID)),
				zap.String("message_id", r.t.Header(HeaderMessageID)), zap.String("moved_to", r.moveTo), zap.String("reason", r.reason))
		case r.act():
			s.log.Info("the mail of a dead letter is no longer in the mailbox: not moved (moved or removed before, or its task's outcome told twice)",
				zap.String("uid", r.t.Header(HeaderUID)), zap.String("message_id", r.t.Header(HeaderMessageID)), zap.String("reason", r.reason))
		default:
			s.log.Info("message left in the mailbox after its dead letter (no failed folder)", zap.String("uid", r.t.Header(HeaderUID)),
				zap.String("message_id", r.t.Header(HeaderMessageID)), zap.String("reason", r.reason))
		}
	}
	return false
}

// markCompleting keeps the reaper off a message whose completion is
// queued. The caller holds s.comp.mu (see enqueue).
func (s *Source) markCompleting(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.inflight[key]; ok {
		e.completing = true
		s.inflight[key] = e
	}
}

// countQueued counts a completion queued (Status.CompletionsQueued).
func (s *Source) countQueued() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.CompletionsQueued++
}

// released gives back to the reaper the messages of completions that
// will not be applied (refused or left at Close): in flight as before their task
// completed, they are emitted again after InFlightTimeout if Run goes on
// (or on the next Run) instead of staying in flight for good.
func (s *Source) released(rs []*compReq) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		if e, ok := s.inflight[r.t.Key]; ok {
			e.completing = false
			s.inflight[r.t.Key] = e
		}
	}
}

// WaitCompletions waits until every completion queued before it (and
// those queued meanwhile) has been applied, or ctx ends. For tests, tools
// and an orderly stop; the runtime does not need it.
func (s *Source) WaitCompletions(ctx context.Context) error {
	return s.comp.wait(ctx)
}

// Close applies what it can of the completion queue within a few seconds
// (what is left is applied after a restart: the messages are emitted
// again; or, if Run goes on, after InFlightTimeout), stops the completion
// loop and closes its connection; later Complete calls return ErrClosed
// and leave their message in flight, emitted again after
// InFlightTimeout. Call it after the worker pools have
// drained (the fx module does, on stop). It does not stop Run: cancel
// Run's context for that.
func (s *Source) Close() error {
	s.comp.close()
	return nil
}
