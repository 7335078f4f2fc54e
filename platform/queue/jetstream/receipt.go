package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// receipt is the private settlement handle of one delivery. The delivery
// and its task live in it (one allocation for all three).
type receipt struct {
	b         *Backend
	q         *queueState
	msg       jetstream.Msg
	del       queue.Delivery
	task      task.Task // del.Task
	seq       uint64
	stored    int64  // when the server stored the message: Unix nanoseconds, its clock
	delivered uint64 // the server's delivery count of this delivery
	attempt   int
	early     int // deliveries before NotBefore, not attempts (queueState.earlyOf)
	ackWait   time.Duration
	// alone is the slice a Lease that hands out this delivery alone
	// returns (alone[:]): no allocation for it. Nothing here reads it,
	// so the caller may write to the slice it was given.
	alone [1]*queue.Delivery

	// mu is held by a settlement (and Extend) across its network calls.
	mu      sync.Mutex
	settled bool
	failed  bool // its last settlement failed: left to the server (Close does not wait for it)
	keyed   bool // its key is remembered once it finished (decodeTask); beside the flags above, in one word with them

	// The lease, under lmu rather than mu: the lease keeper renews it
	// while a settlement holds mu (keep).
	lmu      sync.Mutex
	touched  time.Time // last time the server's AckWait timer restarted
	leaseEnd time.Time // the lease promised to the caller
	ending   bool      // no in-progress ack may follow: settled, its last word (ack, nak, term) going out, or its settlement failed
	naking   bool      // its last word is a negative ack: the server's delivery after it is not held back (holds)
	acking   bool      // settled by an Ack whose ack waits for its finished-key record (ackFollows): renewed until it goes out
}

// setLease promises the lease until now+leaseFor (at least AckWait after
// the last touch). When that is beyond the server's AckWait, the lease
// keeper (keepLeases) sends in-progress acks to keep it. r.lmu held, or
// r not shared yet.
func (r *receipt) setLease(now time.Time, leaseFor time.Duration) {
	end := r.touched.Add(r.ackWait)
	if want := now.Add(leaseFor); want.After(end) {
		end = want
	}
	r.leaseEnd = end
	r.del.LeaseUntil = end
}

// keep sends an in-progress ack when the promised lease extends beyond
// the server's AckWait and about half of that has passed since the last
// touch (renewAfter),
// touches r and reports it sent, with when r was touched before: should
// the server not confirm it heard it, r is marked so again (see
// confirmRenewals). It reports whether r can be forgotten: its lease
// and the server's AckWait have both ended without a settlement (the
// server has redelivered the message; a handler that never settles, or a
// delivery the pool skipped, must not stay tracked with its message
// forever).
//
// A delivery being settled (its settlement holds r.mu across its network
// calls: a dead-letter copy's publish, a Release's) is renewed as well,
// up to the lease promised: were it not, the server would deliver the
// message again after AckWait while the first settlement still runs (a
// dead letter stored, and the source told so, after the redelivery ran
// and succeeded). Settlements are bounded by that lease (settleCtx) and
// take lmu to send their last word (lastWord), so no in-progress ack
// follows an ack, a negative ack (it would cut a retry's delay short)
// or a term. A delivery whose settlement failed is not renewed: it is
// left to the server, which delivers it again after its AckWait rather
// than after the whole lease. A delivery an Ack settled whose ack waits
// for its finished-key record (without Config.AckSync, see Ack) is
// renewed as well until the ack goes out, past its lease's end if need
// be: the record may take up to Config.PublishTimeout, and a redelivery
// before it is stored finds no marker and is handed out again
// (finishedBefore; TestAckWaitingForItsRecordOutlivesItsLease).
func (r *receipt) keep(now time.Time) (forget, sent bool, before time.Time) {
	idle := r.mu.TryLock() // false: being settled (or extended)
	if idle {
		defer r.mu.Unlock()
	}
	r.lmu.Lock()
	defer r.lmu.Unlock()
	if idle && r.settled && !r.acking {
		return false, false, before
	}
	serverEnd := r.touched.Add(r.ackWait)
	if now.After(serverEnd) {
		// Too late: the server has redelivered it. Forgotten once its
		// lease ended too, unless a settlement is still at it.
		return idle && now.After(r.leaseEnd), false, before
	}
	if r.ending || r.b.connDone.Load() {
		return false, false, before
	}
	// Renewed up to its lease's end; one whose ack waits for its record,
	// past it: the ack is still to go out.
	if !r.acking && !r.leaseEnd.After(serverEnd) || now.Sub(r.touched) < renewAfter(r.ackWait) {
		return false, false, before
	}
	if err := r.b.inProgress(r.msg); err != nil {
		if !errors.Is(err, errNotConnected) { // an outage is logged as a disconnect
			r.b.log.Warn("jetstream: keep lease", zap.String("queue", r.q.queue), zap.Error(err))
		}
		return false, false, before
	}
	before = r.touched
	r.touched = now
	return false, true, before
}

// unrenewed marks r touched at before again, when the server did not
// confirm it heard the in-progress ack keep sent at (unless r was touched
// since).
func (r *receipt) unrenewed(at, before time.Time) {
	r.lmu.Lock()
	if r.touched.Equal(at) {
		r.touched = before
	}
	r.lmu.Unlock()
}

// begin checks that r may be settled now and marks it settled. r.mu held.
func (r *receipt) begin() error {
	r.failed = false
	if r.b.connDone.Load() {
		return queue.ErrClosed
	}
	if r.settled {
		return fmt.Errorf("jetstream: delivery already settled: %w", queue.ErrLeaseLost)
	}
	r.lmu.Lock()
	end := r.leaseEnd
	r.lmu.Unlock()
	if time.Now().After(end) {
		r.finish()
		return fmt.Errorf("jetstream: lease ended at %s: %w", end.Format(time.RFC3339Nano), queue.ErrLeaseLost)
	}
	return nil
}

// settleCtx bounds a settlement's network calls by r's lease: past it the
// lease keeper no longer renews the server's AckWait, and the server
// delivers the message again (see keep). Its end at the lease's has a
// cause that wraps queue.ErrLeaseLost (see leaseCut). r.mu held.
func (r *receipt) settleCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	r.lmu.Lock()
	end := r.leaseEnd
	r.lmu.Unlock()
	return context.WithDeadlineCause(ctx, end, fmt.Errorf("jetstream: settlement cut short at the end of the delivery's lease (%s): %w",
		end.Format(time.RFC3339Nano), queue.ErrLeaseLost))
}

// leaseCut returns err, the error of a settlement whose calls sctx (from
// settleCtx) bounded, wrapping queue.ErrLeaseLost as well when sctx ended
// with the delivery's lease: callers branch on it (the worker pool logs a
// lost lease; the server delivers the task again). A settlement its
// caller's ctx cut short (a stopping pool) is reported as such. A
// settlement that ended as a dead letter (queue.ErrDeadLettered: a
// Release's on the last allowed delivery, whose dead letter may be
// stored in the lease's last moments) took effect: its lease ending
// after that is not reported.
func leaseCut(sctx context.Context, err error) error {
	if err == nil || sctx.Err() == nil || errors.Is(err, queue.ErrLeaseLost) || errors.Is(err, queue.ErrDeadLettered) {
		return err
	}
	if cause := context.Cause(sctx); errors.Is(cause, queue.ErrLeaseLost) {
		return fmt.Errorf("%w (%w)", err, cause)
	}
	return err
}

// lastWord is called before r's settlement sends its last word to the
// server (ack, negative ack, term): no in-progress ack follows it. It
// fails with queue.ErrLeaseLost when the server's AckWait ran out
// unrenewed meanwhile (a settlement longer than the lease, renewals the
// server did not confirm): the server has delivered the message again,
// perhaps to another worker, and what this settlement would report is
// not the task's outcome. r.mu held.
//
// A negative ack's (op nakOp or giveBackOp) marks r naking: the server
// may deliver the message again at once (a retry whose delay ran out),
// and that delivery can reach the process before the settlement has
// forgotten r; it must not be held back as a second delivery of r's
// message (holds), which would leave the message undelivered for a
// whole AckWait.
func (r *receipt) lastWord(op string) error {
	r.lmu.Lock()
	defer r.lmu.Unlock()
	r.ending = true
	r.naking = op == nakOp || op == giveBackOp
	return r.ranOut(op)
}

// The ops of lastWord whose last word is a negative ack: Retry's, and a
// Release's whose copy was not stored (releaseRefused).
const (
	nakOp      = "retry"
	giveBackOp = "give back"
)

// ackFollows is lastWord for an Ack whose ack goes out once its
// finished-key record is stored (markDoneThenAck): it fails the same
// way, and otherwise marks r acking, so that the lease keeper goes on
// renewing it until ackAfterRecord sends the ack (or gives up on the
// record). r.mu held.
func (r *receipt) ackFollows() error {
	r.lmu.Lock()
	defer r.lmu.Unlock()
	if err := r.ranOut("ack"); err != nil {
		r.ending = true
		return err
	}
	r.acking = true
	return nil
}

// ranOut fails with queue.ErrLeaseLost when the server's AckWait ran
// out unrenewed (see lastWord). r.lmu held.
func (r *receipt) ranOut(op string) error {
	if end := r.touched.Add(r.ackWait); time.Now().After(end) {
		return fmt.Errorf("jetstream: %s task %s: AckWait unrenewed since %s, the task is delivered again: %w",
			op, r.del.Task.ID, end.Format(time.RFC3339Nano), queue.ErrLeaseLost)
	}
	return nil
}

// acked runs ack, which sends r's ack once its finished-key record was
// stored (or gives up on it), as r's last word: no in-progress ack
// follows. r is then forgotten. It does not take r.mu: the Ack that
// marked r acking may still hold it (ackAfterRecord can run before
// markDoneThenAck returns).
func (r *receipt) acked(ack func()) {
	r.lmu.Lock()
	r.acking, r.ending = false, true
	ack()
	r.lmu.Unlock()
	r.b.untrack(r)
}

// failedIf marks r failed when err, its settlement's error, is not nil
// (see pruneInflight) and returns err. The lease keeper no longer renews
// it: its lease ends with the server's AckWait, when the server delivers
// it again. r.mu held.
func (r *receipt) failedIf(err error) error {
	if err != nil && !r.settled {
		r.failed = true
		r.lmu.Lock()
		r.ending, r.acking, r.naking = true, false, false // failed: not held (holds) until a settlement or Extend takes it up again
		if end := r.touched.Add(r.ackWait); end.Before(r.leaseEnd) {
			r.leaseEnd = end
			r.del.LeaseUntil = end
		}
		r.lmu.Unlock()
	}
	return err
}

// finish marks r settled. r.mu held.
func (r *receipt) finish() {
	r.settled = true
	r.lmu.Lock()
	r.ending = true
	r.lmu.Unlock()
	r.b.untrack(r)
}

// finishGone marks r settled when its message is settled for good
// (acknowledged or terminated): its early count is dropped. r.mu held.
func (r *receipt) finishGone() {
	r.finish()
	r.forgetEarly()
}

// finishAcking marks r settled by an Ack whose ack waits for its
// finished-key record (ackFollows): r stays tracked and renewed until
// ackAfterRecord sends the ack (acked). r.mu held.
func (r *receipt) finishAcking() {
	r.settled = true
	r.forgetEarly()
}

// forgetEarly drops the early count of r's message (see
// queueState.earlyOf): not only r.early, which r's delivery found, but
// also the deliveries held back while r held the message (heldAgain).
func (r *receipt) forgetEarly() { r.q.forgetEarly(r.seq) }

func (b *Backend) receiptOf(d *queue.Delivery) (*receipt, error) {
	if d == nil {
		return nil, fmt.Errorf("jetstream: nil delivery: %w", ErrForeignDelivery)
	}
	r, ok := d.Receipt.(*receipt)
	if !ok || r == nil || r.b != b {
		return nil, ErrForeignDelivery
	}
	return r, nil
}

// track records a handed-out delivery until it is settled, indexed by its
// message's stream sequence, unless this process holds another delivery
// of that message (holderLocked): then r is not tracked, must not be
// handed out, and that delivery is returned.
func (b *Backend) track(r *receipt, now time.Time) *receipt {
	b.imu.Lock()
	defer b.imu.Unlock()
	if h := r.q.holderLocked(r.seq, r.stored, now); h != nil {
		return h
	}
	b.inflight[r] = struct{}{}
	r.q.holding[r.seq] = r
	return nil
}

func (b *Backend) untrack(r *receipt) {
	b.imu.Lock()
	b.forgetLocked(r)
	b.imu.Unlock()
	select {
	case b.settled <- struct{}{}:
	default:
	}
}

// pruneInflight forgets deliveries whose lease has ended and returns how
// many remain that a settlement may still settle: not those whose last
// settlement failed (the caller reported the failure and left the
// delivery to the server, which delivers it again after its lease), so
// that Close does not wait for them; a delivery being settled counts, and
// so does one whose ack waits for its finished-key record (acking),
// unless offline: the connection is lost, and the record's answer with it.
func (b *Backend) pruneInflight(now time.Time, offline bool) int {
	b.imu.Lock()
	defer b.imu.Unlock()
	n := 0
	for r := range b.inflight {
		if offline {
			r.lmu.Lock()
			acking := r.acking
			r.lmu.Unlock()
			if acking {
				continue
			}
		}
		if r.mu.TryLock() {
			r.lmu.Lock()
			gone, failed := !r.settled && now.After(r.leaseEnd), r.failed
			r.lmu.Unlock()
			if gone {
				b.forgetLocked(r)
			}
			r.mu.Unlock()
			if gone || failed {
				continue
			}
		}
		n++
	}
	return n
}

// forgetLocked stops tracking r (and drops it from its queue's index,
// unless another delivery of its message took its place). b.imu held.
func (b *Backend) forgetLocked(r *receipt) {
	delete(b.inflight, r)
	if r.q.holding[r.seq] == r {
		delete(r.q.holding, r.seq)
	}
}
