package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// TaskError is the failure of one task of a batch.
type TaskError struct {
	ID    string
	Queue string
	Err   error
}

// EnqueueError reports the tasks of a batch whose storing the server did
// not confirm. Most were refused (invalid, too large, a full stream whose
// wait ended); one whose publish ack did not come in time (a timeout, a
// lost connection) may still have been stored. The others are stored
// durably. Enqueueing the whole batch again is safe either way, because
// tasks are de-duplicated by key.
type EnqueueError struct {
	Failed []TaskError
	Total  int
}

// Error lists the tasks the backend refused and why.
func (e *EnqueueError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "jetstream: enqueue: %d of %d tasks not confirmed stored", len(e.Failed), e.Total)
	for i, f := range e.Failed {
		if i == 3 {
			fmt.Fprintf(&sb, "; and %d more", len(e.Failed)-3)
			break
		}
		fmt.Fprintf(&sb, "; task %s on %q: %v", f.ID, f.Queue, f.Err)
	}
	return sb.String()
}

// Unwrap returns the distinct causes, so errors.Is works on them.
func (e *EnqueueError) Unwrap() []error {
	out := make([]error, 0, 1)
	seen := map[string]bool{}
	for _, f := range e.Failed {
		if k := f.Err.Error(); !seen[k] {
			seen[k] = true
			out = append(out, f.Err)
		}
	}
	return out
}

// Enqueue publishes the tasks asynchronously and waits for every
// publish acknowledgement before it returns, so an accepted batch is
// stored (and replicated) on the server. Tasks are validated first: an
// invalid task fails the whole batch before anything is published. A task
// whose key is queued, or was enqueued or finished within
// Config.DuplicateWindow, is dropped (see done.go: this holds across
// restarts) and marked: task.MarkFinished when its key's task finished,
// task.MarkHeld when the server refused its publish as a duplicate of a
// message still stored (see held.go). A task with NotBefore in the future is stored as a one-shot
// message schedule that the server turns into a ready task at NotBefore
// (servers before 2.12 have no schedules, and a stream bounded by
// Config.MaxMsgs or MaxBytes cannot use them: there the task is stored
// ready and its first delivery is given back with a negative ack delayed
// until NotBefore, which does not count as an attempt in this process).
// When a bounded work stream is full, Enqueue waits for room, retrying
// with back-off, until ctx ends.
func (b *Backend) Enqueue(ctx context.Context, tasks ...*task.Task) error {
	if err := b.usable(); err != nil {
		return err
	}
	if len(tasks) == 0 {
		return nil
	}
	now := time.Now()
	for _, t := range tasks {
		if err := checkTask(t); err != nil {
			return err
		}
	}
	qs := make([]*queueState, len(tasks))
	for i, t := range tasks {
		q, err := b.queue(t.Queue)
		if err != nil {
			return err
		}
		qs[i] = q
	}
	for i := range qs {
		if i > 0 && qs[i] == qs[i-1] {
			continue
		}
		if err := qs[i].ensure(ctx, b); err != nil {
			return err
		}
	}
	for _, t := range tasks {
		t.Prepare(now)
	}
	done, err := b.finished(ctx, tasks, qs)
	if err != nil {
		return err
	}
	var failed []TaskError
	fail := func(i int, err error) {
		failed = append(failed, TaskError{ID: tasks[i].ID, Queue: tasks[i].Queue, Err: err})
	}
	msgs := make([]*nats.Msg, len(tasks))
	var send []int    // tasks to publish
	var dups []dupPub // tasks whose publish the server found a duplicate
	for i, t := range tasks {
		if done[i].done {
			// Its key finished within the window, or its task was
			// released and the copy is queued (a marker without an
			// outcome): a duplicate either way.
			markFinished(t, done[i].data)
			if _, _, ok := task.Finished(t); !ok {
				task.MarkHeld(t, "")
			}
			continue
		}
		q := qs[i]
		var m *nats.Msg
		spec := msgSpec{subject: q.subject, msgID: msgIDOf(t.Key), keyed: !t.KeyGenerated()}
		if t.NotBefore.After(now) && b.scheduling() {
			// The message the schedule produces need not keep the
			// Nats-Msg-Id: the id travels in HeaderTask.
			spec.subject, spec.keepID, spec.extra = q.schedPrefix+schedToken(t.ID), true, 2
			m = encodeTask(t, spec)
			m.Header[hdrSchedule] = []string{"@at " + t.NotBefore.UTC().Format(time.RFC3339Nano)}
			m.Header[hdrScheduleTarget] = []string{q.subject}
		} else {
			m = encodeTask(t, spec)
		}
		msgs[i] = m
		if size, room := msgSize(m), copyRoom(t, spec); size > b.MaxPayload()-room {
			// Stored, it could never be dead-lettered: the copy adds the
			// reason and its headers (and may write the id), and would
			// not fit.
			fail(i, fmt.Errorf("task of %d bytes (payload and headers) exceeds %d, the server's max_payload less %d bytes kept for a dead-letter copy's headers and id: %w",
				size, b.MaxPayload()-room, room, queue.ErrTooLarge))
			continue
		}
		send = append(send, i)
	}
	// A work stream at its max_msgs or max_bytes refuses new messages
	// (DiscardNew): those tasks are published again, with back-off, until
	// the stream has room or ctx ends. Nothing queued is ever dropped to
	// make room.
	wait := fullBackoff()
	for len(send) > 0 {
		errs, seqs := b.publish(ctx, msgs, send)
		var full []int
		for j, i := range send {
			switch {
			case errs[j] == nil && seqs[j].dup:
				dups = append(dups, dupPub{i: i, seq: seqs[j].seq})
			case errs[j] == nil:
			case isStreamFull(errs[j]):
				full = append(full, i)
			default:
				fail(i, errs[j])
			}
		}
		send = full
		if len(send) == 0 {
			break
		}
		for _, i := range send {
			// A fresh message for the next attempt: the refused one is
			// done with, but nothing of it is reused.
			m := msgs[i]
			msgs[i] = &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
		}
		t := time.NewTimer(wait.NextBackOff())
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			for _, i := range send {
				fail(i, fmt.Errorf("queue %q is full (its stream's max_msgs or max_bytes): %w", tasks[i].Queue, ctx.Err()))
			}
			send = nil
		case <-b.closing:
			t.Stop()
			for _, i := range send {
				fail(i, fmt.Errorf("queue %q is full: %w", tasks[i].Queue, queue.ErrClosed))
			}
			send = nil
		}
	}
	if len(dups) > 0 {
		b.markHeld(ctx, tasks, qs, dups)
	}
	if len(failed) > 0 {
		return &EnqueueError{Failed: failed, Total: len(tasks)}
	}
	return nil
}

// publish publishes msgs[i] for every i in send asynchronously and waits
// for their acks (or ctx); the results have one entry per entry of send:
// the error, and whether the server found the message a duplicate of one
// it stored (and which).
// Acks come back through the backend's async publish callbacks (onPubAck,
// onPubErr), which count down the batch: no channels or futures per
// message.
//
// At most Config.MaxAsyncPending publishes are in flight (the backend's
// publish window, shared with the ack path's finished-key records): a
// larger batch waits for acks to make room, until ctx ends or the backend
// closes; the tasks not published by then fail with that cause.
func (b *Backend) publish(ctx context.Context, msgs []*nats.Msg, send []int) ([]error, []dupAck) {
	batch := &pubBatch{errs: make([]error, len(send)), dups: make([]dupAck, len(send)), done: make(chan struct{})}
	batch.left.Store(int64(len(send)))
	for j, i := range send {
		if err := b.acquire(ctx); err != nil {
			for k := j; k < len(send); k++ {
				batch.settle(k, fmt.Errorf("publish: waiting for room among %d publishes in flight: %w", cap(b.window), err))
			}
			break
		}
		m := msgs[i]            // a message of its own for every attempt (Enqueue copies it for the next)
		b.pubs.add(m, batch, j) // before publishing: the ack may come first
		if _, err := b.js.PublishMsgAsync(m); err != nil {
			b.releaseWindow() // nats.go forgot it: no callback comes
			if b.pubs.take(m) != nil {
				batch.settle(j, fmt.Errorf("publish: %w", err))
			}
		}
	}
	select {
	case <-batch.done:
	case <-ctx.Done():
		// Give up on the acks still missing; late ones are ignored.
		for j, i := range send {
			// One never published (no room in the window) was settled
			// already and is not pending.
			if b.pubs.take(msgs[i]) != nil {
				batch.settle(j, fmt.Errorf("publish ack: %w", ctx.Err()))
			}
		}
		<-batch.done
	}
	return batch.errs, batch.dups
}

// isStreamFull reports whether err is a stream's refusal of a message
// because it holds max_msgs or max_bytes (discard policy "new").
func isStreamFull(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	d := apiErr.Description
	return strings.Contains(d, "maximum messages exceeded") || strings.Contains(d, "maximum bytes exceeded")
}

// fullBackoff is how long Enqueue waits before it offers a full stream
// its tasks again: from 20ms up to 1s.
func fullBackoff() *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 20 * time.Millisecond
	bo.MaxInterval = time.Second
	bo.Reset()
	return bo
}

// deadLetterRoom is what a task must leave free of the server's
// max_payload for its dead-letter copy: the reason (at most maxReason
// bytes), the other Plba-Dead- headers it adds and the copy's own
// Nats-Msg-Id. The id the copy may add to its Plba-Task is counted per
// task (copyRoom).
const deadLetterRoom = maxReason + 512

// msgSize is the size of m on the wire as max_payload counts it: the
// payload and the header block.
func msgSize(m *nats.Msg) int64 {
	n := len(m.Data)
	if len(m.Header) > 0 {
		n += len("NATS/1.0\r\n\r\n")
		for k, vs := range m.Header {
			for _, v := range vs {
				n += len(k) + len(": \r\n") + len(v)
			}
		}
	}
	return int64(n)
}

// pubBatch waits for the publish acks of one Enqueue call.
type pubBatch struct {
	left atomic.Int64  // acks (or errors) still missing
	errs []error       // per message; written once each, before left drops
	dups []dupAck      // per message; written with errs, by a duplicate's ack
	done chan struct{} // closed when left reaches 0
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
	p.settle(i, nil)
}

// settle records the outcome of message i (err nil: stored).
func (p *pubBatch) settle(i int, err error) {
	p.errs[i] = err
	if p.left.Add(-1) == 0 {
		close(p.done)
	}
}

// pubSlot is where a published message's outcome goes: message i of a
// batch, or, for a finished-key record, the ack of the task's message
// (ack, with the queue and task id for the log; see ackAfterRecord).
// Slots are stored by value: no allocation of their own.
type pubSlot struct {
	batch *pubBatch
	i     int
	ack   jetstream.Msg
	queue string
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
// ack, the message of task id on queue q, is acked (ackAfterRecord).
func (p *pending) addAck(m *nats.Msg, ack jetstream.Msg, q, id string) {
	p.put(m, pubSlot{ack: ack, queue: q, id: id})
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
// the task held, see held.go).
func (b *Backend) onPubAck(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
	b.releaseWindow()
	if s, ok := b.pubs.takeSlot(m); ok {
		if s.ack != nil {
			b.ackAfterRecord(s.ack, s.queue, s.id, nil)
			return
		}
		s.batch.settleAck(s.i, ack)
	}
}

// onPubErr is the async publish error callback (an error reply, no
// stream, a timeout after Config.PublishTimeout, a reconnect that lost
// the ack). It may run with nats.go's publisher lock held: it only
// touches the pending map.
func (b *Backend) onPubErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	b.releaseWindow()
	if s, ok := b.pubs.takeSlot(m); ok {
		if s.ack != nil {
			b.ackAfterRecord(s.ack, s.queue, s.id, fmt.Errorf("publish ack: %w", err))
			return
		}
		s.batch.settle(s.i, fmt.Errorf("publish ack: %w", err))
	}
}
