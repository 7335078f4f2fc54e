package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
)

// publish publishes msgs[i] for every i in send asynchronously and waits
// for their acks (or ctx); the results have one entry per entry of send:
// the error, and whether the server found the message a duplicate of one
// it stored (and which).
func (b *Backend) publish(ctx context.Context, msgs []*nats.Msg, send []int) ([]error, []dupAck) {
	r := b.startPublish(ctx, msgs, len(send))
	for _, i := range send {
		r.add(i)
	}
	return r.wait()
}

// pubRound is one round of asynchronous publishes: add publishes a
// message at once, so that the server stores the first messages of a
// batch while the caller still encodes the next ones, and wait waits for
// the acks of all.
// Acks come back through the backend's async publish callbacks (onPubAck,
// onPubErr), which count down the batch: no channels or futures per
// message.
//
// At most Config.MaxAsyncPending publishes are in flight (the backend's
// publish window, shared with the ack path's finished-key records): a
// larger batch waits for acks to make room, until ctx ends or the backend
// closes; the messages not published by then fail with that cause.
type pubRound struct {
	b     *Backend
	ctx   context.Context
	msgs  []*nats.Msg
	send  []int // the indexes in msgs added, in order
	batch *pubBatch
	stop  error // why no more messages are published (no room in the window)
}

// startPublish starts a round that publishes up to max messages of msgs.
func (b *Backend) startPublish(ctx context.Context, msgs []*nats.Msg, max int) pubRound {
	batch := &pubBatch{errs: make([]error, max), dups: make([]dupAck, max), acked: make([]bool, max), done: make(chan struct{})}
	batch.left.Store(1) // wait's: the round is not done before wait
	return pubRound{b: b, ctx: ctx, msgs: msgs, send: make([]int, 0, max), batch: batch}
}

// add publishes msgs[i] (a message of its own for every round: Enqueue
// copies it for the next).
func (r *pubRound) add(i int) {
	b, batch, j := r.b, r.batch, len(r.send)
	r.send = append(r.send, i)
	batch.left.Add(1)
	if r.stop == nil {
		if err := b.acquire(r.ctx); err != nil {
			r.stop = fmt.Errorf("publish: waiting for room among %d publishes in flight: %w", cap(b.window), err)
		}
	}
	if r.stop != nil {
		batch.settle(j, r.stop)
		return
	}
	m := r.msgs[i]
	b.pubs.add(m, batch, j) // before publishing: the ack may come first
	if _, err := b.js.PublishMsgAsync(m); err != nil {
		b.releaseWindow() // nats.go forgot it: no callback comes
		if b.pubs.take(m) != nil {
			batch.settle(j, fmt.Errorf("publish: %w", err))
		}
	}
}

// wait waits for the acks of the messages added (or for ctx) and
// returns their results, one entry per add in order.
func (r *pubRound) wait() ([]error, []dupAck) {
	batch := r.batch
	batch.release()
	select {
	case <-batch.done:
	case <-r.ctx.Done():
		// Give up on the acks still missing; late ones are ignored.
		for j, i := range r.send {
			// One never published (no room in the window) was settled
			// already and is not pending.
			if r.b.pubs.take(r.msgs[i]) != nil {
				// Sent, unanswered: it may be stored.
				batch.settle(j, fmt.Errorf("publish ack: %w (%w)", r.ctx.Err(), queue.ErrOutcomeUnknown))
			}
		}
		<-batch.done
	}
	n := len(r.send)
	return batch.errs[:n], batch.dups[:n]
}

// pubBatch waits for the publish acks of one Enqueue call.
type pubBatch struct {
	left  atomic.Int64  // acks (or errors) still missing, plus one until wait
	errs  []error       // per message; written once each, before left drops
	dups  []dupAck      // per message; written with errs, by a duplicate's ack
	acked []bool        // per message; written with errs: the server acknowledged it (see onPubAck)
	done  chan struct{} // closed when left reaches 0
}

// dupAck is what a publish ack says of a duplicate: the server stored
// nothing, the message's Nats-Msg-Id being that of the message it stores
// at seq (stored within the duplicate window).
type dupAck struct {
	dup bool
	seq uint64
}

// settleAck records ack, the server's acceptance of message i: stored, or
// a duplicate.
func (p *pubBatch) settleAck(i int, ack *jetstream.PubAck) {
	if ack != nil && ack.Duplicate {
		p.dups[i] = dupAck{dup: true, seq: ack.Sequence}
	}
	p.acked[i] = true
	p.settle(i, nil)
}

// settle records the outcome of message i (err nil: stored).
func (p *pubBatch) settle(i int, err error) {
	p.errs[i] = err
	p.release()
}

// release counts one outcome (or the round's own count, see startPublish)
// as in.
func (p *pubBatch) release() {
	if p.left.Add(-1) == 0 {
		close(p.done)
	}
}

// pubSlot is where a published message's outcome goes: message i of a
// batch, or, for a finished-key record, the ack of the delivery whose
// key it records (ack, with the task id for the log; see
// ackAfterRecord). Slots are stored by value: no allocation of their
// own.
type pubSlot struct {
	batch *pubBatch
	i     int
	ack   *receipt
	id    string
}

// pending maps the messages of Enqueue calls that wait for their publish
// ack to their batch. Whoever takes a message out of it (the ack or error
// callback, or Enqueue giving up) settles it, exactly once.
type pending struct {
	mu sync.Mutex
	m  map[*nats.Msg]pubSlot
}

func (p *pending) add(m *nats.Msg, b *pubBatch, i int) { p.put(m, pubSlot{batch: b, i: i}) }

// addAck makes the outcome of m, a finished-key record, decide whether
// r, the delivery of task id, is acked (ackAfterRecord).
func (p *pending) addAck(m *nats.Msg, r *receipt, id string) {
	p.put(m, pubSlot{ack: r, id: id})
}

func (p *pending) put(m *nats.Msg, s pubSlot) {
	p.mu.Lock()
	if p.m == nil {
		p.m = make(map[*nats.Msg]pubSlot)
	}
	p.m[m] = s
	p.mu.Unlock()
}

// take removes m and returns its slot's batch (nil when already taken),
// settling nothing; the caller settles.
func (p *pending) take(m *nats.Msg) *pubBatch {
	s, ok := p.takeSlot(m)
	if !ok {
		return nil
	}
	return s.batch
}

func (p *pending) takeSlot(m *nats.Msg) (pubSlot, bool) {
	p.mu.Lock()
	s, ok := p.m[m]
	if ok {
		delete(p.m, m)
	}
	p.mu.Unlock()
	return s, ok
}

// onPubAck is the async publish ack callback: the message is stored (or
// was a duplicate within the window, which is success too; Enqueue marks
// the task held, see held.go). nats.go removed the message from its
// pending acks before it called this, and holds it no more: Enqueue
// recycles it (taskMsg.recycle).
func (b *Backend) onPubAck(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
	b.releaseWindow()
	if s, ok := b.pubs.takeSlot(m); ok {
		if s.ack != nil {
			b.ackAfterRecord(s.ack, s.id, claimErr(ack, nil))
			return
		}
		s.batch.settleAck(s.i, ack)
	}
}

// onPubErr is the async publish error callback (an error reply, no
// stream, a timeout after Config.PublishTimeout, a reconnect that lost
// the ack; the last two wrap queue.ErrOutcomeUnknown, see pubAckError). A finished-key record no stream answered goes to keepStores,
// which publishes it again once the stream is set up again. It may run with nats.go's publisher lock held: it only
// touches the pending map.
func (b *Backend) onPubErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	b.releaseWindow()
	if s, ok := b.pubs.takeSlot(m); ok {
		if s.ack != nil {
			if errors.Is(err, jetstream.ErrNoStreamResponse) {
				b.retryRecord(m, s) // after the stream is set up again (restore.go)
				return
			}
			if err = claimErr(nil, err); !errors.Is(err, errClaimLost) {
				err = fmt.Errorf("publish ack: %w", err)
			}
			b.ackAfterRecord(s.ack, s.id, err)
			return
		}
		s.batch.settle(s.i, pubAckError(err))
	}
}

// pubAckError is the error of a task whose publish failed with err after
// it was sent. A server's answer says it stored nothing (an API error: a
// refusal, a full stream) and so does no responder (no stream listens on
// the subject); anything else (the ack timed out, the connection was lost
// before it came, an ack that could not be read) may have followed a
// stored message, and wraps queue.ErrOutcomeUnknown.
func pubAckError(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		return fmt.Errorf("publish ack: %w", err)
	}
	return fmt.Errorf("publish ack: %w (%w)", err, queue.ErrOutcomeUnknown)
}

// publishAnswered publishes m, a copy a settlement stores before it
// settles its delivery (what: a dead-letter copy, a Release's copy),
// waiting for the server's answer at most Config.PublishTimeout at a
// time: a copy whose answer was lost (a stream leader gone with it, a
// reply dropped) is sent again with the same Nats-Msg-Id, which the
// server de-duplicates (the answer then names the copy stored first),
// rather than waited for until ctx ends (the delivery's lease, 30 s by
// default in a worker pool). A server still storing the first (error
// 10158, "duplicate message id is in process") is asked again after a
// pause. It returns when a copy is answered, on any other error, or when
// ctx ends.
func (b *Backend) publishAnswered(ctx context.Context, m *nats.Msg, what string) (*jetstream.PubAck, error) {
	pause := min(b.cfg.PublishTimeout/10, 250*time.Millisecond)
	for {
		pctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
		ack, err := b.js.PublishMsg(pctx, m)
		cancel()
		switch {
		case err == nil || ctx.Err() != nil:
			return ack, err
		case errors.Is(err, context.DeadlineExceeded):
			b.log.Warn("jetstream: "+what+" unanswered within publish_timeout: sent again (the server keeps one)",
				zap.String("subject", m.Subject), zap.String("msg_id", m.Header.Get(hdrMsgID)))
		case dupInProcess(err):
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return nil, err
			}
		default:
			return ack, err
		}
		m = &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
	}
}

// errDupInProcess is the server's error 10158: a message with the same
// Nats-Msg-Id is being stored (a clustered stream proposing it).
const errDupInProcess = 10158

// dupInProcess reports whether err is the server's error 10158.
func dupInProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errDupInProcess
}
