package jetstream

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/task"
)

// dropLostDead deletes the dead letter stored (publishDead's answer),
// which r's settlement stored before its claim was lost, unless it is
// the dead letter of the delivery that won: that delivery dead-lettered
// the task too (its marker says so), and stored this copy (one
// Nats-Msg-Id for both, within the dead-letter stream's duplicate
// window: a copy stored before, or one the winner's publish found) and
// not one of its own (the two more than that window apart: a copy of
// the message other than this one is stored). A dead letter that cannot
// be told apart so is kept, and logged.
func (b *Backend) dropLostDead(ctx context.Context, r *receipt, stored deadInfo) {
	seq := stored.seq
	o, err := b.markedOutcome(ctx, r.q, r.del.Task.Key, r.keyed)
	if err == nil {
		if o == task.DeadLettered {
			if stored.before {
				return
			}
			var other bool
			if other, err = b.otherDeadCopy(ctx, r, seq); err == nil && !other {
				return
			}
		}
		if err == nil {
			err = b.dead.DeleteMsg(ctx, seq)
		}
		if err == nil || isMsgNotFound(err) {
			b.log.Info("jetstream: dead letter deleted: another delivery of its message settled it first",
				zap.String("queue", r.q.queue), zap.String("task", r.del.Task.ID), zap.Uint64("dead_seq", seq), zap.String("outcome", string(o)))
			return
		}
	}
	b.log.Warn("jetstream: a dead letter stored by a settlement that another delivery of its message beat may be listed for a task that did not end so, or twice",
		zap.String("queue", r.q.queue), zap.String("task", r.del.Task.ID), zap.Uint64("dead_seq", seq), zap.Error(err))
}

// otherDeadCopy reports whether a dead letter of r's message other than
// the one at seq of the dead-letter stream is stored: one stored since
// the message was (less copyLookupMargin, for the clocks of the servers)
// (deadCopyOf).
func (b *Backend) otherDeadCopy(ctx context.Context, r *receipt, seq uint64) (bool, error) {
	from := deadScanFrom{since: time.Unix(0, r.stored).Add(-copyLookupMargin)}
	d, err := b.deadCopyOf(ctx, r.q, r.seq, r.del.Task.ID, from, seq)
	return d != nil, err
}
