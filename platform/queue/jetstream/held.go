package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/task"
)

// Duplicates of live tasks. A work stream refuses a message whose
// Nats-Msg-Id (the task key) it stored within the duplicate window: the
// publish ack says Duplicate and names the stored message's sequence.
// Enqueue then reads that message (one request per such task, after all
// of the batch's acks) and marks the dropped task held by the task it
// carries (task.MarkHeld). Which message answered matters: a duplicate
// can also be the task's own earlier copy (the same Task, or one with its
// ID, enqueued again after an Enqueue that stored it, or after an
// EnqueueError whose publish ack did not come), and that task is stored,
// not held by another: it is marked stored already (task.MarkStoredAgain),
// unless this very call stored it (the very Task twice in its batch). A publish Enqueue repeats
// itself, after a full stream refused it, cannot meet its own copy: a
// refused message is not recorded for de-duplication. A task whose key
// Prepare generated is never held: no other task can carry that key (a
// producer's key written the same has another Nats-Msg-Id: msgIDOf), so
// its duplicate is always its own copy.
//
// The stored message may be settled already, its term or ack not yet
// heard: its key's marker is that message's own claim (claim.go), which
// records the outcome, and the duplicate is marked finished as it says
// (an enqueue answered "in flight" while the task's dead letter was
// listed). The stored message may be gone by the time it is read: its task
// finished between the finished-key check and the publish (the server
// remembers the id for the window after the message went), or it was a
// message schedule that fired (the task it made is live, under another
// sequence). The key's finished marker tells the first: the task is marked
// finished, as if the check had found it. Otherwise, and when the message
// cannot be read (a timeout, a lost connection), the task is marked held
// by an unknown task ("" as the holder): its key was taken, and this call
// stored nothing, which is what the mark says.

// dupPub is task i of an Enqueue whose publish the server acked as a
// duplicate of the message it stores at seq.
type dupPub struct {
	i   int
	seq uint64
}

// dupMark is how a duplicate is marked: held by (by "" when unknown),
// finished as the marker data says, or not at all (the task's own copy).
type dupMark struct {
	own      bool
	finished []byte // a finished-key marker's data; nil: none
	by       string
}

// markHeld marks the tasks of dups (see above). The lookups run at most
// doneLookups at a time and only read the tasks; the marks are set after
// all of them, one by one (a batch may hold the same Task twice).
func (b *Backend) markHeld(ctx context.Context, tasks []*task.Task, qs []*queueState, dups []dupPub, stored []bool) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	marks := make([]dupMark, len(dups))
	sem := make(chan struct{}, doneLookups)
	var wg sync.WaitGroup
	for k, d := range dups {
		if tasks[d.i].KeyGenerated() {
			marks[k].own = true
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			marks[k] = b.dupMarkOf(ctx, qs[d.i], tasks[d.i], d.seq)
		}()
	}
	wg.Wait()
	for k, d := range dups {
		t, m := tasks[d.i], marks[k]
		switch {
		case m.own && storedHere(tasks, stored, t):
			// The very Task twice in this batch: this call stored it.
		case m.own:
			task.MarkStoredAgain(t)
		case m.finished != nil:
			markFinished(t, m.finished)
		default:
			task.MarkHeld(t, m.by)
		}
	}
}

// dupMarkOf finds what holds the key of t on q: the task of the message
// stored at seq, or, when that message is gone, the key's finished marker.
func (b *Backend) dupMarkOf(ctx context.Context, q *queueState, t *task.Task, seq uint64) dupMark {
	by, stored, err := b.holderAt(ctx, q, seq)
	switch {
	case err == nil && by == t.ID:
		return dupMark{own: true, by: by}
	case err == nil:
		// A marker the holder's settlement claimed says how it ended;
		// any other (none, an earlier task's, unreadable) leaves it held.
		m, err := b.done.GetLastMsgForSubject(ctx, q.doneSubject(t.Key, true))
		if err == nil && markerOutcome(m.Data).Final() && m.Header.Get(hdrMsgID) == claimIDOf(q.stream, seq, stored.UnixNano()) {
			return dupMark{finished: m.Data}
		}
		return dupMark{by: by}
	case errors.Is(err, errHolderGone):
		m, err := b.done.GetLastMsgForSubject(ctx, q.doneSubject(t.Key, true))
		switch {
		case err == nil:
			return dupMark{finished: m.Data}
		case isMsgNotFound(err):
			return dupMark{} // a schedule that fired: its task is live
		case storeGone(err):
			// The finished-key stream is gone: a round sets it up again
			// (restore.go). This Enqueue does not wait for it; the
			// marker went with the stream, so the mark stays unknown.
			b.askRestore()
		}
		b.log.Warn("jetstream: enqueue: a duplicate's key not looked up; marked held by an unknown task",
			zap.String("queue", t.Queue), zap.String("key", t.Key), zap.String("task", t.ID), zap.Error(err))
		return dupMark{}
	default:
		b.log.Warn("jetstream: enqueue: the task holding a duplicate's key not read; marked held by an unknown task",
			zap.String("queue", t.Queue), zap.String("key", t.Key), zap.String("task", t.ID), zap.Error(err))
		return dupMark{}
	}
}

// storedHere reports whether this Enqueue stored t itself (the very Task,
// at another index of tasks; stored says which it stored).
func storedHere(tasks []*task.Task, stored []bool, t *task.Task) bool {
	for i, s := range stored {
		if s && tasks[i] == t {
			return true
		}
	}
	return false
}

// errHolderGone says the message a duplicate's ack named is no longer
// stored.
var errHolderGone = errors.New("jetstream: the message holding the key is gone")

// holderAt returns the id of the task stored at seq on q's work stream,
// and when it was stored.
func (b *Backend) holderAt(ctx context.Context, q *queueState, seq uint64) (string, time.Time, error) {
	st := q.workStream()
	if st == nil || seq == 0 {
		return "", time.Time{}, fmt.Errorf("jetstream: no message to read on %q (sequence %d)", q.queue, seq)
	}
	raw, err := st.GetMsg(ctx, seq)
	if isMsgNotFound(err) {
		return "", time.Time{}, errHolderGone
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("jetstream: read message %d of %q: %w", seq, q.stream, err)
	}
	h, _, err := decodeTask(raw.Header, nil, q.queue)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("jetstream: message %d of %q: %w", seq, q.stream, err)
	}
	return h.ID, raw.Time, nil
}
