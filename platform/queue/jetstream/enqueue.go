package jetstream

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
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
// lost connection, the caller's context ending) may still have been
// stored, and its error wraps queue.ErrOutcomeUnknown (so errors.Is on
// an EnqueueError reports it when any task's outcome is unknown). The
// others are stored durably. Enqueueing the whole batch again is safe either way, because
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

var _ queue.PartialEnqueueError = (*EnqueueError)(nil)

// NotStored reports whether t is one of the tasks the error names
// (queue.PartialEnqueueError): matched by id and queue, as Failed names
// them.
func (e *EnqueueError) NotStored(t *task.Task) bool {
	for _, f := range e.Failed {
		if f.ID == t.ID && f.Queue == t.Queue {
			return true
		}
	}
	return false
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
// with back-off, until ctx ends. A work stream deleted on the server (a
// server that lost its store, an operator's removal) is set up again
// once the publishes of its tasks found no stream to answer them (they
// stored nothing), and those tasks are published again.
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
	if storeGone(err) {
		// The finished-key stream is gone (restore.go): set it up
		// again and look up once more.
		if rerr := b.awaitRestore(ctx); rerr != nil {
			return fmt.Errorf("%w; setting the stream up again: %w", err, rerr)
		}
		done, err = b.finished(ctx, tasks, qs)
	}
	if err != nil {
		return err
	}
	var failed []TaskError
	fail := func(i int, err error) {
		failed = append(failed, TaskError{ID: tasks[i].ID, Queue: tasks[i].Queue, Err: err})
	}
	msgs := make([]*nats.Msg, len(tasks))
	tms := make([]*taskMsg, len(tasks)) // msgs[i]'s, for recycle
	var dups []dupPub                   // tasks whose publish the server found a duplicate
	var stored []bool                   // by index: the tasks this call stored (nil: none yet)
	// Each message is published as soon as it is encoded: the server
	// stores the first ones while the next are encoded.
	first := b.startPublish(ctx, msgs, len(tasks))
	for i, t := range tasks {
		if done[i].done {
			// Its key finished within the window, or its task was
			// released and the copy is queued (a marker without an
			// outcome): a duplicate either way.
			markFinished(t, done[i].data)
			continue
		}
		q := qs[i]
		made := t.KeyGenerated()
		spec := msgSpec{subject: q.subject, msgID: msgIDOf(t.Key, made), keyed: !made}
		sched := t.NotBefore.After(now) && b.scheduling()
		if sched {
			// The message the schedule produces need not keep the
			// Nats-Msg-Id: the id travels in HeaderTask.
			spec.subject, spec.keepID, spec.extra = q.schedPrefix+schedToken(schedName(t, made, spec.msgID)), true, 2
		}
		tms[i] = encodeTaskMsg(t, spec)
		m := &tms[i].msg
		if sched {
			m.Header[hdrSchedule] = []string{"@at " + t.NotBefore.UTC().Format(time.RFC3339Nano)}
			m.Header[hdrScheduleTarget] = []string{q.subject}
		}
		msgs[i] = m
		hs, room := headerSize(m.Header), copyRoom(t, spec)
		if size := int64(len(m.Data)) + hs; size > b.MaxPayload()-room {
			// Stored, it could never be dead-lettered: the copy adds the
			// reason and its headers (and may write the id), and would
			// not fit.
			fail(i, fmt.Errorf("task of %d bytes (payload and headers) exceeds %d, the server's max_payload less %d bytes kept for a dead-letter copy's headers and id: %w",
				size, b.MaxPayload()-room, room, queue.ErrTooLarge))
			continue
		} else if hs > maxHeaderBlock-room {
			// Likewise for the headers, which JetStream bounds apart.
			fail(i, fmt.Errorf("task with %d bytes of headers (its own, its key and fields) exceeds %d, the %d JetStream allows a message's headers less %d bytes kept for a dead-letter copy's: %w",
				hs, maxHeaderBlock-room, maxHeaderBlock, room, queue.ErrTooLarge))
			continue
		}
		first.add(i)
	}
	// A work stream at its max_msgs or max_bytes refuses new messages
	// (DiscardNew): those tasks are published again, with back-off, until
	// the stream has room or ctx ends. Nothing queued is ever dropped to
	// make room.
	//
	// A publish no stream answered (the work stream was deleted behind
	// this backend's back: a server that lost its store, an operator's
	// removal) stored nothing: its queue is set up again (restore), once
	// per Enqueue, and those tasks are published again at once.
	wait := fullBackoff()
	restored := false
	send := first.send
	errs, seqs := first.wait()
	// The messages the server acknowledged at once are done with (the
	// rest of Enqueue reads the tasks, and republishes only those it did
	// not acknowledge): their allocations serve the next tasks.
	defer func() {
		for j, i := range first.send {
			if first.batch.acked[j] {
				tms[i].recycle()
			}
		}
	}()
	for len(send) > 0 {
		var full, lost []int
		for j, i := range send {
			switch {
			case errs[j] == nil && seqs[j].dup:
				dups = append(dups, dupPub{i: i, seq: seqs[j].seq})
			case errs[j] == nil:
				if stored == nil {
					stored = make([]bool, len(tasks))
				}
				stored[i] = true
			case isStreamFull(errs[j]):
				full = append(full, i)
			case !restored && errors.Is(errs[j], jetstream.ErrNoStreamResponse):
				lost = append(lost, i)
			default:
				fail(i, errs[j])
			}
		}
		if len(lost) > 0 {
			restored = true
			lost = b.restore(ctx, qs, lost, func(i int, err error) {
				fail(i, fmt.Errorf("no stream answered its publish, and setting queue %q up again failed: %w", tasks[i].Queue, err))
			})
		}
		send = append(full, lost...)
		if len(send) == 0 {
			break
		}
		for _, i := range send {
			// A fresh message for the next attempt: the refused one is
			// done with, but nothing of it is reused.
			m := msgs[i]
			msgs[i] = &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
		}
		if len(full) > 0 && !b.waitForRoom(ctx, wait, func(err error) {
			for _, i := range send {
				fail(i, fmt.Errorf("queue %q is full (its stream's max_msgs or max_bytes): %w", tasks[i].Queue, err))
			}
		}) {
			break
		}
		// Again: after the back-off when a stream was full, else (only
		// restored queues' tasks) at once.
		errs, seqs = b.publish(ctx, msgs, send)
	}
	if len(dups) > 0 {
		b.markHeld(ctx, tasks, qs, dups, stored)
	}
	if len(failed) > 0 {
		return &EnqueueError{Failed: failed, Total: len(tasks)}
	}
	return nil
}

// waitForRoom waits out wait's next back-off before the tasks refused by
// a full stream are offered again, and reports true; when ctx ends or the
// backend closes first, it calls fail with the cause and reports false.
func (b *Backend) waitForRoom(ctx context.Context, wait *backoff.ExponentialBackOff, fail func(error)) bool {
	t := time.NewTimer(wait.NextBackOff())
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		fail(ctx.Err())
	case <-b.closing:
		fail(queue.ErrClosed)
	}
	return false
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

// maxHeaderBlock is the largest header block JetStream stores with a
// message (the server refuses more: "header size exceeds maximum allowed
// of 64k"), whatever the max_payload.
const maxHeaderBlock = math.MaxUint16

// deadLetterRoom is what a task must leave free of the server's
// max_payload for its dead-letter copy: the reason (at most maxReason
// bytes), the other Plba-Dead- headers it adds and the copy's own
// Nats-Msg-Id. The id the copy may add to its Plba-Task is counted per
// task (copyRoom).
const deadLetterRoom = maxReason + 512

// msgSize is the size of m on the wire as max_payload counts it: the
// payload and the header block.
func msgSize(m *nats.Msg) int64 {
	return int64(len(m.Data)) + headerSize(m.Header)
}

// headerSize is the size of h's header block on the wire.
func headerSize(h nats.Header) int64 {
	if len(h) == 0 {
		return 0
	}
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return int64(n)
}
