package memory

import (
	"context"
	"time"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// ListDead returns up to limit dead letters of the queue, oldest first
// (limit <= 0 means all). The tasks are deep copies carrying the attempt
// count of their last delivery.
func (b *Backend) ListDead(_ context.Context, name string, limit int) ([]queue.DeadLetter, error) {
	if err := b.open(); err != nil {
		return nil, err
	}
	q := b.lookup(name)
	if q == nil {
		return nil, nil
	}
	now := b.nanos()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.advance(now)
	n := len(q.dead)
	if limit > 0 && limit < n {
		n = limit
	}
	out := make([]queue.DeadLetter, n)
	for i, e := range q.dead[:n] {
		out[i] = deadLetter(e)
	}
	return out, nil
}

// Redrive moves the dead letters with the given task ids (all when none
// are given) back to the ready end of the queue with fresh attempt counts,
// and returns how many moved. Redriven tasks count against the capacity
// but are never refused for lack of room: no dead letter is left for a
// reason of its own (no queue.DeadLetterError), and its only error is
// queue.ErrClosed.
func (b *Backend) Redrive(_ context.Context, name string, ids ...string) (int, error) {
	return b.takeDead(name, ids, func(q *queueState, e *entry, _ int64) {
		e.state, e.reason, e.deadAt = stReady, "", time.Time{}
		e.attempts, e.expiries = 0, 0
		q.ready.push(e)
		q.live++
		q.wakeLeasers(1)
	})
}

// Purge deletes the dead letters with the given task ids (all when none
// are given) and returns how many went. Their keys are remembered for
// Options.DedupWindow, as after an ack. Like Redrive it leaves no dead
// letter for a reason of its own.
func (b *Backend) Purge(_ context.Context, name string, ids ...string) (int, error) {
	return b.takeDead(name, ids, func(q *queueState, e *entry, now int64) {
		q.release(e, now, task.DeadLettered)
	})
}

// takeDead removes the selected dead letters of a queue and hands each to
// fn, returning how many there were.
func (b *Backend) takeDead(name string, ids []string, fn func(q *queueState, e *entry, now int64)) (int, error) {
	if err := b.open(); err != nil {
		return 0, err
	}
	q := b.lookup(name)
	if q == nil {
		return 0, nil
	}
	var want map[string]bool
	if len(ids) > 0 {
		want = make(map[string]bool, len(ids))
		for _, id := range ids {
			want[id] = true
		}
	}
	now := b.nanos()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.advance(now)
	kept, n := q.dead[:0], 0
	for _, e := range q.dead {
		if want != nil && !want[e.t.ID] {
			kept = append(kept, e)
			continue
		}
		n++
		fn(q, e, now)
	}
	clear(q.dead[len(kept):])
	q.dead = kept
	return n, nil
}
