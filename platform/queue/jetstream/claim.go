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

// One settlement per message. The server can deliver a message again
// while its earlier delivery still runs: after a consumer leader change a
// clustered consumer takes a delivery of a message stored more than an
// AckWait before it was delivered for expired (nats-server 2.15
// replicates a delivery with the message's stored time), and delivers it
// again at once, to this process or another
// (TestStepDownRedeliversAMessageInFlight). Both deliveries run. A
// settlement on either still settles the message (the server keys it by
// stream sequence), and each would write the key's finished marker over
// the other's: the task's source could hear two outcomes, a dead letter
// stay listed for a task whose marker says it succeeded
// (TestClusterChurnTellsEachTaskOnce).
//
// So every settlement that ends a message with an outcome someone hears
// (an Ack that records the key, a dead letter) first claims the
// message: it stores the key's marker with a Nats-Msg-Id of
// the message's own (claimID), the same for every delivery of it. The
// finished-key stream keeps one marker per Nats-Msg-Id within its
// duplicate window: the second claim is answered "duplicate" and stores
// nothing. Its settlement lost: it tells no one anything (the delivery
// is reported lost, queue.ErrLeaseLost, as a lease the server gave to
// another), does not ack, term or release the message (the winner's
// settlement does), and a dead letter it stored for the message is
// deleted again unless the winner dead-lettered the task too. A claim
// made more than half the window after its message was stored (a long
// task, a backlog) could come after the window of another's: it reads
// the key's marker first, loses to one newer than its message that
// records a final outcome, and is written only over the marker it read
// (Nats-Expected-Last-Subject-Sequence). A claim made sooner that comes
// more than a window after another delivery's is no race: that
// delivery's marker was stored more than half a window before this
// delivery was made, which found it (finishedBefore) and was not handed
// out. A Release claims nothing: it ends no task, and its copy is a
// message of its own, whose settlement claims it (left: a Release and
// another delivery's settlement of the same message at once both stand,
// and the copy runs again).

// errClaimLost says that another delivery of the message claimed it
// first (see claim): this settlement did not happen.
var errClaimLost = fmt.Errorf("another delivery of its message was settled first (the server delivered it twice at once): %w", queue.ErrLeaseLost)

// claimID is the Nats-Msg-Id of the claim of r's message: its work
// stream, sequence and stored time (a work stream set up again numbers
// its messages from 1 again).
func claimID(r *receipt) string { return claimIDOf(r.q.stream, r.seq, r.stored) }

// claimIDOf is the Nats-Msg-Id of the claim of the message at seq of the
// work stream, stored at stored (Unix nanoseconds).
func claimIDOf(stream string, seq uint64, stored int64) string {
	return "fin-" + stream + "-" + strconv.FormatUint(seq, 10) + "-" + strconv.FormatInt(stored, 36)
}

// claimWindow is how long the finished-key stream de-duplicates claims:
// its duplicate window as the server reported it when the stream was set
// up (the stream sets none: the server's default of 2 minutes, or its
// MaxAge, Config.DuplicateWindow, when shorter). A marker lives for
// Config.DuplicateWindow: with a window of 2 minutes or less, a claim
// later than that finds neither the other's claim nor its marker (and a
// delivery then finds no finished key either: done.go).
func (b *Backend) claimWindow() time.Duration {
	if w := time.Duration(b.claimWin.Load()); w > 0 {
		return w
	}
	return min(b.cfg.DuplicateWindow, 2*time.Minute)
}

// claimMsg builds the claim of r's message: the marker that its key (a
// generated one's own subject when !r.keyed) finished with outcome o
// (task.Returned: released, its copy queued). A claim made late (its
// message stored more than half the claim window before: see claim)
// reads the key's marker first and is written only over it; it reports
// errClaimLost when that marker records a final outcome and is newer
// than r's message. A marker without one (a Release's, a Redrive's) is
// no settlement of r's message, and is written over.
func (b *Backend) claimMsg(ctx context.Context, r *receipt, o task.Outcome, reason string) (*nats.Msg, error) {
	subj := r.q.doneSubject(r.task.Key, r.keyed)
	m := &nats.Msg{Subject: subj, Header: nats.Header{hdrMsgID: []string{claimID(r)}}, Data: doneData(o, reason)}
	stored := time.Unix(0, r.stored)
	if time.Since(stored) < b.claimWindow()/2 {
		return m, nil
	}
	prev, err := b.lastDone(ctx, subj)
	var seq uint64
	switch {
	case isMsgNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("jetstream: record key %q of %q as finished: read its marker: %w", r.task.Key, r.q.queue, err)
	case markerOutcome(prev.Data).Final() && prev.Time.After(stored):
		return nil, errClaimLost
	default:
		seq = prev.Sequence
	}
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(seq, 10))
	return m, nil
}

// claim stores r's claim (claimMsg) and waits for the server. It returns
// errClaimLost (wrapped) when another delivery of r's message claimed it
// first: a duplicate, or a marker newer than the one a late claim read.
// A claim no stream answered is made once more after the streams were
// set up again (restore.go).
func (b *Backend) claim(ctx context.Context, r *receipt, o task.Outcome, reason string) error {
	m, err := b.claimMsg(ctx, r, o, reason)
	if err != nil {
		return err
	}
	ack, err := b.js.PublishMsg(ctx, m)
	if storeGone(err) {
		if rerr := b.awaitRestore(ctx); rerr != nil {
			return fmt.Errorf("jetstream: record key %q of %q as finished: %w; setting the stream up again: %w", r.task.Key, r.q.queue, err, rerr)
		}
		// Built again: a late claim reads the marker again (the stream
		// may be the one it read, its leader elected meanwhile, or a new
		// one).
		if m, err = b.claimMsg(ctx, r, o, reason); err != nil {
			return err
		}
		ack, err = b.js.PublishMsg(ctx, m)
	}
	if err = claimErr(ack, err); err != nil {
		return fmt.Errorf("jetstream: record key %q of %q as finished: %w", r.task.Key, r.q.queue, err)
	}
	return nil
}

// claimErr is the outcome of a claim the server answered with ack or err:
// errClaimLost for a duplicate, or a late claim's marker written over
// since it was read.
func claimErr(ack *jetstream.PubAck, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
		return errClaimLost
	case err != nil:
		return err
	case ack != nil && ack.Duplicate:
		return errClaimLost
	}
	return nil
}

// claimLost ends r's settlement that lost its claim (err, errClaimLost):
// r is settled without a word to the server (the winner's settlement
// acks or terminates the message), and the error says so. The message
// ends for good (the winner settles it, or the delivery after finds it
// finished): its deliveries held back here are forgotten (forgetEarly).
func (b *Backend) claimLost(r *receipt, op string, err error) error {
	r.finishGone()
	b.claimsLost.Add(1)
	b.log.Info("jetstream: settlement not made: another delivery of the message settled it first",
		zap.String("op", op), zap.String("queue", r.q.queue), zap.String("task", r.task.ID),
		zap.Uint64("seq", r.seq), zap.Uint64("delivered", r.delivered))
	return fmt.Errorf("jetstream: %s task %s: %w", op, r.task.ID, err)
}
