package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// A dead letter is stored first and the work message terminated after
// (deadLetterLocked). When the term does not take effect (it failed, was
// lost with the connection, or was not sent: the lease ran out before
// it, see receipt.lastWord) or the process dies in between, the
// server delivers the message again after AckWait. The task was
// dead-lettered: its dead letter is listed and, for a keyed task, its
// key recorded so. Running it again could make it succeed, and its
// source would be told succeeded while its dead letter stays listed (and
// could be re-driven, running a task that succeeded once more). So a
// message delivered more than once is first looked for among the
// queue's dead letters (deadLetteredBefore); when its copy is there, it
// is finished as the dead letter it is: the watcher is told (the
// runtime tells the source, as for a dead letter the backend made on its
// own), its key is recorded as dead-lettered, the message terminated,
// and it is not handed out. A first delivery (NumDelivered 1) cannot
// have a dead letter and pays nothing, nor does a delivery that follows
// this process's own Retry of the message (retriedHere): that delivery
// passed this check (or was the first), and its Retry made no dead
// letter, so no copy can be there. The lookup is left to deliveries
// after a lease ran out, after a Retry by another process, or after a
// crash, where a scan during an incident that dead-letters many tasks
// (about 1 ms per hundred stored since the message) must not slow every
// retry of an older message.

// deadLetteredBefore reports whether r's redelivered message (md its
// metadata) must not be handed out: it had been dead-lettered (its copy
// is stored) and is now finished as such (claimFoundDead), or the lookup failed and it is left to the
// server, which delivers it again after its AckWait (as poison leaves a
// message whose copy failed). The lookup runs within ctx (the Lease's),
// at most Config.PublishTimeout and while connected.
func (b *Backend) deadLetteredBefore(ctx context.Context, r *receipt, md *jetstream.MsgMetadata) bool {
	q, m, t := r.q, r.msg, &r.task
	lctx, stop := b.serverContext(ctx)
	defer stop()
	prev, err := b.redeliveredCopy(lctx, q, md, t.ID)
	if err != nil {
		b.log.Warn("jetstream: redelivered task not handed out: its dead letter could not be looked for (delivered again later)",
			zap.String("queue", q.queue), zap.String("task", t.ID), zap.Uint64("seq", md.Sequence.Stream), zap.Error(err))
		q.skipped(md.Sequence.Stream)
		return true
	}
	if prev == nil {
		return false
	}
	if !b.claimFoundDead(lctx, r, prev.Reason) {
		q.skipped(md.Sequence.Stream)
		return true
	}
	// The task as it was dead-lettered: its attempts then, the reason and
	// the time its dead letter keeps.
	dt := *t
	dt.Attempt = prev.Task.Attempt
	seq := md.Sequence.Stream
	b.tellDeadOnce(q, seq, queue.DeadLetter{Task: &dt, Reason: prev.Reason, At: prev.At})
	if err := lctx.Err(); err != nil {
		// The watcher took longer than the lookups may: the server may
		// have delivered the message again meanwhile, to be found and
		// terminated then, and not told again (a term now would forget
		// that it was told, and that delivery would tell it again).
		b.log.Warn("jetstream: redelivered dead letter: told, not terminated (delivered again later)",
			zap.String("queue", q.queue), zap.String("task", t.ID), zap.Error(err))
		return true
	}
	if err := b.term(m, prev.Reason); err != nil {
		b.log.Warn("jetstream: redelivered dead letter: terminate it (delivered again later)",
			zap.String("queue", q.queue), zap.String("task", t.ID), zap.Error(err))
		return true
	}
	q.forgetMessage(seq)
	b.log.Info("jetstream: redelivered task finished as the dead letter stored for it before",
		zap.String("queue", q.queue), zap.String("task", t.ID), zap.Uint64("seq", md.Sequence.Stream))
	return true
}

// claimFoundDead claims r's message as dead-lettered with reason, its
// dead letter found stored (claim.go), and reports whether it is to be
// finished as that dead letter: the claim won, or lost to one that
// dead-lettered it as well (the settlement that stored the copy, whose
// term was lost or which died before it; its source is told again, the
// same outcome). A claim lost to another outcome (another delivery of
// the message, run at the same time, succeeded first: the settlement
// that stored the copy lost its claim and deletes it) or that fails
// leaves the delivery to the server, not handed out.
func (b *Backend) claimFoundDead(ctx context.Context, r *receipt, reason string) bool {
	err := b.claim(ctx, r, task.DeadLettered, reason)
	if errors.Is(err, errClaimLost) {
		var o task.Outcome
		if o, err = b.markedOutcome(ctx, r.q, r.task.Key, r.keyed); err == nil {
			if o == task.DeadLettered {
				return true
			}
			b.log.Info("jetstream: redelivered task not handed out: a dead letter is stored for it, but another delivery of its message settled it otherwise first",
				zap.String("queue", r.q.queue), zap.String("task", r.task.ID), zap.Uint64("seq", r.seq))
			return false
		}
	}
	if err != nil {
		b.log.Warn("jetstream: redelivered dead letter: record its key (delivered again later)",
			zap.String("queue", r.q.queue), zap.String("task", r.task.ID), zap.Error(err))
		return false
	}
	return true
}

// redeliveredCopy returns the dead letter stored for the message md
// (task id) of q's work stream, or nil. The copy was stored after the
// message, so only dead letters stored since (less copyLookupMargin, for
// the clocks of the servers leading the two streams) can be it: the
// queue's newest dead letter is read first (one get), which is the copy
// itself when the redelivery follows its dead letter, and settles it when
// it is older than that; otherwise the dead letters stored since are
// scanned (deadCopyOf).
func (b *Backend) redeliveredCopy(ctx context.Context, q *queueState, md *jetstream.MsgMetadata, id string) (*queue.DeadLetter, error) {
	b.copyLookups.Add(1)
	seq := md.Sequence.Stream
	since := md.Timestamp.Add(-copyLookupMargin)
	last, err := b.lastDead(ctx, q.deadSubject)
	if isMsgNotFound(err) {
		return nil, nil // the queue has no dead letter
	}
	if err != nil {
		return nil, err
	}
	if last.Time.Before(since) {
		return nil, nil
	}
	if last.Header.Get(hdrMsgID) == deadMsgID(q.stream, seq) {
		dl := decodeDeadOrRaw(last.Header, nil, q.queue, last.Sequence, last.Time)
		if dl.Task.ID == id {
			dl.Task.Payload = nil
			return &dl, nil
		}
	}
	return b.deadCopyOf(ctx, q, seq, id, deadScanFrom{since: since}, 0)
}

// lastDead reads the newest dead letter of subject. When no stream
// answers (the dead-letter stream is gone), it waits for the streams to
// be set up again (restore.go) and reads once more (as lastDone).
func (b *Backend) lastDead(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	m, err := b.dead.GetLastMsgForSubject(ctx, subject)
	if storeGone(err) {
		if rerr := b.awaitRestore(ctx); rerr != nil {
			return nil, fmt.Errorf("%w; setting the stream %q up again: %w", err, b.names.deadStream(), rerr)
		}
		m, err = b.dead.GetLastMsgForSubject(ctx, subject)
	}
	return m, err
}

// retriedKeep is how long after its due time a local Retry is
// remembered (retriedHere); at least four AckWaits. A redelivery later
// than that (a backlog, or another process took it) is looked up.
const retriedKeep = 10 * time.Minute

// retried is a local Retry of a message: when it is due, and the
// server's delivery count of the delivery it settled.
type retried struct {
	due       time.Time
	delivered uint64
}

// retriedHere reports, and forgets, whether this process's Retry settled
// the delivery just before this one (delivered, the server's count) of
// the message seq (see deadLetteredBefore); a delivery in between, made
// to another process, may have dead-lettered it. Only deliveries after
// the first ask.
func (q *queueState) retriedHere(seq, delivered uint64) bool {
	q.pmu.Lock()
	e, ok := q.retried[seq]
	delete(q.retried, seq)
	q.pmu.Unlock()
	return ok && e.delivered+1 == delivered
}
