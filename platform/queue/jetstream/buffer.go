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
)

// The prefetch buffer: Lease takes from it, the buffer keeper keeps what
// waits in it alive, and Close gives what is left back.

// take removes up to max prefetched messages and appends them to dst.
func (q *queueState) take(dst []inbound, max int) []inbound {
	q.pmu.Lock()
	n := min(max, len(q.buf))
	if n == 0 {
		q.pmu.Unlock()
		return dst
	}
	out := append(dst, q.buf[:n]...)
	rest := copy(q.buf, q.buf[n:])
	clear(q.buf[rest:])
	q.buf = q.buf[:rest]
	q.taken += n
	left := rest > 0
	q.pmu.Unlock()
	if left {
		signal(q.avail) // another Lease may take the rest
	}
	signal(q.room)
	return out
}

// prefetch puts m, which the server just delivered, into the buffer and
// reports whether it did. A message stored more than half an AckWait
// before is sent an in-progress ack at once; a delivery again of a
// message this process holds is not buffered (heldAgain), and one of a
// message still buffered takes its place there (see holding.go). A first
// delivery can be neither: it is looked up nowhere.
func (q *queueState) prefetch(b *Backend, m jetstream.Msg, now time.Time) bool {
	md, err := m.Metadata()
	if err != nil {
		md = nil // deliver says so
	}
	again := md != nil && md.NumDelivered > 1
	if again {
		if h := b.holder(q, md.Sequence.Stream, md.Timestamp, now); h != nil {
			b.heldAgain(q, h, md)
			return false
		}
	}
	if md != nil && oldAt(md.Timestamp, now, q.ackWait()) {
		_ = b.inProgress(m) // touched now all the same: it arrived now
	}
	in := inbound{msg: m, md: md, touched: now}
	q.pmu.Lock()
	defer q.pmu.Unlock()
	if again {
		for i := range q.buf {
			if o := q.buf[i].md; o != nil && o.Sequence.Stream == md.Sequence.Stream && o.Timestamp.Equal(md.Timestamp) {
				q.buf[i] = in
				q.skippedLocked(md.Sequence.Stream) // the delivery it replaces: no attempt
				return true
			}
		}
	}
	q.buf = append(q.buf, in)
	return true
}

// refresh sends an in-progress ack for prefetched messages that waited
// about half their AckWait (renewAfter), so none expires in the buffer,
// marks them touched and returns them, with when each was touched before: should
// the server not confirm it heard them, they are marked so again
// (unrenewed, see refreshBuffers). None is sent while the connection is
// down (see inProgress), nor for a message whose AckWait ran out
// unrenewed (an outage, a partition): the server delivers it again, and
// Lease will see it expired.
func (q *queueState) refresh(b *Backend, now time.Time) []renewal {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	var sent []renewal
	for i := range q.buf {
		in := &q.buf[i]
		if waited := now.Sub(in.touched); waited >= renewAfter(q.ackWait()) && waited < q.ackWait() {
			if b.inProgress(in.msg) == nil {
				sent = append(sent, renewal{msg: in.msg, before: in.touched})
				in.touched = now
			}
		}
	}
	for seq, due := range q.nakDelayed {
		if !due.After(now) {
			delete(q.nakDelayed, seq)
		}
	}
	keep := max(retriedKeep, 4*q.ackWait())
	for seq, e := range q.retried {
		if now.Sub(e.due) > keep {
			delete(q.retried, seq) // delivered elsewhere, or late: its next delivery looks
		}
	}
	return sent
}

// renewal is a buffered message refresh sent an in-progress ack for, and
// when it was touched before.
type renewal struct {
	msg    jetstream.Msg
	before time.Time
}

// unrenewed marks the buffered messages among sent touched as before the
// in-progress acks sent at, which the server did not confirm (unless
// touched again since).
func (q *queueState) unrenewed(sent []renewal, at time.Time) {
	before := make(map[jetstream.Msg]time.Time, len(sent))
	for _, r := range sent {
		before[r.msg] = r.before
	}
	q.pmu.Lock()
	defer q.pmu.Unlock()
	for i := range q.buf {
		if t, ok := before[q.buf[i].msg]; ok && q.buf[i].touched.Equal(at) {
			q.buf[i].touched = t
		}
	}
}

// prefetched reports the buffered messages and the locally known retries
// still waiting out their delay.
func (q *queueState) prefetched(now time.Time) (buffered, delayed int) {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	for _, due := range q.nakDelayed {
		if due.After(now) {
			delayed++
		}
	}
	return len(q.buf), delayed
}

// confirmOrUndo waits, at most for wait, until the server confirms it
// heard the in-progress acks sent so far (confirmHeard); unconfirmed (a
// partitioned server: the connection looks up, nothing passes), it runs
// undo, so that they do not count, unless parent ended (the backend
// closing).
func (b *Backend) confirmOrUndo(parent context.Context, wait time.Duration, what string, undo func()) {
	ctx, cancel := context.WithTimeout(parent, wait)
	err := b.confirmHeard(ctx)
	cancel()
	if err == nil || parent.Err() != nil {
		return
	}
	b.log.Debug("jetstream: "+what, zap.Error(err))
	undo()
}

// inProgress sends an in-progress ack for m (the server restarts its
// AckWait) and fails with errNotConnected while the connection is down:
// nats.go would only buffer the ack until it reconnects and report
// success, and the server, which does not hear it, delivers the message
// again once its AckWait ran out; a buffered message or a lease counted
// as renewed then would be handed out (or kept) beside that new delivery.
// Sent is not heard: on a connection that looks up but reaches nobody (a
// network partition), only confirmHeard tells.
func (b *Backend) inProgress(m jetstream.Msg) error {
	if !b.nc.IsConnected() {
		return errNotConnected
	}
	return m.InProgress()
}

// confirmHeard waits until the server has read everything sent on the
// connection so far (a PING's PONG: it reads a connection in order), at
// most until ctx ends or, without a deadline, for the publish timeout.
// One round trip confirms every in-progress ack sent before it.
func (b *Backend) confirmHeard(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.cfg.PublishTimeout)
		defer cancel()
	}
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("jetstream: the server did not confirm: %w", err)
	}
	return nil
}

// keepBuffers runs refresh over every queue until Close.
func (b *Backend) keepBuffers() {
	defer b.wg.Done()
	every := max(b.cfg.AckWait/4, 5*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.closing:
			return
		case now := <-t.C:
			b.refreshBuffers(now, max(b.cfg.AckWait/2, every))
		}
	}
}

// refreshBuffers runs refresh over every queue and then makes sure the
// server heard the in-progress acks (within wait: half an AckWait, when
// the AckWait of a message sent one would end). Unconfirmed (a
// partitioned server: the connection looks up, nothing passes), they do
// not count: a message whose AckWait ran out meanwhile is seen as expired
// when Lease takes it, and left to the server, which delivers it again,
// instead of being handed out beside that new delivery
// (TestBufferDoesNotOutliveAPartition).
func (b *Backend) refreshBuffers(now time.Time, wait time.Duration) {
	type round struct {
		q    *queueState
		sent []renewal
	}
	var rounds []round
	for _, q := range b.knownQueues() {
		if q.ready.Load() {
			if sent := q.refresh(b, now); len(sent) > 0 {
				rounds = append(rounds, round{q, sent})
			}
		}
	}
	if len(rounds) == 0 {
		return
	}
	b.confirmOrUndo(b.pullCtx, wait, "keep prefetched messages alive", func() {
		for _, r := range rounds {
			r.q.unrenewed(r.sent, now)
		}
	})
}

// stopConsumers stops the pullers (ending their open Fetch) and gives
// the prefetched messages back (giveBack), bounded by ctx.
func (b *Backend) stopConsumers(ctx context.Context) {
	b.wmu.Lock() // no puller starts after this
	b.wmu.Unlock()
	b.stopPull()
	b.wg.Wait()
	gctx, stop := b.serverContext(ctx)
	defer stop()
	for _, q := range b.knownQueues() {
		q.pmu.Lock()
		buf := q.buf
		q.buf = nil
		q.pmu.Unlock()
		b.giveBack(gctx, q, buf)
	}
}

// maxParallelGiveBacks bounds the releases giveBack runs at a time.
const maxParallelGiveBacks = 16

// serverContext bounds calls that need the server and must not wait out
// an outage: they end with ctx, after Config.PublishTimeout, or as soon as
// the connection is lost. It bounds the give-backs of one Close (or of one
// Lease that took messages after Close began), all queues together (an
// outage would otherwise hold Close for all of ctx, a host's whole stop
// timeout), and the dead-letter copies and lookups made inside Lease
// (poison, deadLetteredBefore).
func (b *Backend) serverContext(ctx context.Context) (context.Context, func()) {
	tctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	gctx, stop := b.whileConnected(tctx)
	return gctx, func() { stop(); cancel() }
}

// giveBack returns prefetched messages that no worker ran to their queue
// at once, for any replica. A negative ack would do that, but the server
// counts it as a delivery, so the next delivery's Attempt would be one
// too high for a task that never ran. Each is given back as Release gives
// back a delivery instead: a copy that carries the attempts used, then the
// ack of the original. A copy the server does not store while connected
// (a full bounded stream) sends the message back with a negative ack,
// counted; on its last allowed delivery the task's dead letter is stored
// and the message left to the server, whose max-deliveries advisory
// tells the dead watcher (releaseRefused). Messages whose wait in the buffer
// outlived their AckWait are left to the server, which redelivers them.
//
// What is not given back when ctx ends (see serverContext) is left to
// the server as it is, delivered again after its AckWait (the delivery
// then counts), and is not waited for as in flight.
func (b *Backend) giveBack(ctx context.Context, q *queueState, ins []inbound) {
	sem := make(chan struct{}, maxParallelGiveBacks)
	var wg sync.WaitGroup
	left := 0
	for _, in := range ins {
		if ctx.Err() != nil {
			left++
			continue
		}
		d := b.deliver(ctx, q, in, q.ackWait())
		if d == nil {
			continue // expired, not a task (dead-lettered) or not due yet: handled
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := b.release(ctx, d, true)
			switch {
			case err == nil:
			case errors.Is(err, queue.ErrDeadLettered):
				b.leaveToServer(d)
				b.log.Warn("jetstream: a prefetched task on its last allowed delivery could not be given back: dead-lettered (its source is told when the server's max-deliveries advisory is handled)",
					zap.String("queue", q.queue), zap.String("task", d.Task.ID), zap.String("reason", d.DeadReason))
			case errors.Is(err, errCopyUnanswered):
				b.leaveToServer(d)
				b.log.Warn("jetstream: a prefetched task on its last allowed delivery could not be given back: its copy may be queued; left to the server, whose max-deliveries advisory dead-letters it unless its copy is queued",
					zap.String("queue", q.queue), zap.String("task", d.Task.ID), zap.Error(err))
			default:
				b.leaveToServer(d)
				b.log.Warn("jetstream: give back a prefetched task (it is delivered again, counted)",
					zap.String("queue", q.queue), zap.String("task", d.Task.ID), zap.Error(err))
			}
		})
	}
	wg.Wait()
	if left > 0 {
		b.log.Warn("jetstream: prefetched tasks left to the server, delivered again after their AckWait",
			zap.String("queue", q.queue), zap.Int("tasks", left), zap.Error(context.Cause(ctx)))
	}
}

// leaveToServer forgets d, whose give-back failed: the server delivers
// its message again after its AckWait, and Close does not wait for it as
// a delivery in flight.
func (b *Backend) leaveToServer(d *queue.Delivery) {
	r, err := b.receiptOf(d)
	if err != nil {
		return
	}
	r.mu.Lock()
	r.finish()
	r.mu.Unlock()
}
