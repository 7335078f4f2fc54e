package memory

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/plba/plba/platform/queue"
)

// QueryDead returns one page of the queue's dead letters matching qr,
// oldest first. The cursor is the position of the last dead letter of the
// page in the order the queue dead-lettered them, so a page stays correct
// while dead letters are re-driven or purged in between. Without
// qr.WithPayload no payload is copied.
func (b *Backend) QueryDead(_ context.Context, name string, qr queue.DeadQuery) (queue.DeadPage, error) {
	if err := b.open(); err != nil {
		return queue.DeadPage{}, err
	}
	var after uint64
	if qr.Cursor != "" {
		n, err := strconv.ParseUint(qr.Cursor, 10, 64)
		if err != nil {
			return queue.DeadPage{}, fmt.Errorf("memory: cursor %q: %w", qr.Cursor, queue.ErrBadCursor)
		}
		after = n
	}
	q := b.lookup(name)
	if q == nil {
		return queue.DeadPage{Items: []queue.DeadLetter{}}, nil
	}
	limit := qr.PageLimit()
	match := qr.Matcher() // the ids as a set: one lookup per dead letter
	now := b.nanos()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.advance(now)
	page := queue.DeadPage{Items: []queue.DeadLetter{}}
	// q.dead is in dead-letter order: deadSeq grows along it.
	var last uint64 // deadSeq of the page's last dead letter
	i := sort.Search(len(q.dead), func(i int) bool { return q.dead[i].deadSeq > after })
	for ; i < len(q.dead); i++ {
		e := q.dead[i]
		d := deadSummary(e)
		if !match(d) {
			continue
		}
		if len(page.Items) == limit {
			page.Next = strconv.FormatUint(last, 10)
			break
		}
		if qr.WithPayload {
			d = deadLetter(e)
		}
		page.Items = append(page.Items, d)
		last = e.deadSeq
	}
	return page, nil
}

// GetDead returns the dead letter of the queue whose task has id, with
// its payload.
func (b *Backend) GetDead(_ context.Context, name, id string) (queue.DeadLetter, error) {
	if err := b.open(); err != nil {
		return queue.DeadLetter{}, err
	}
	if q := b.lookup(name); q != nil {
		now := b.nanos()
		q.mu.Lock()
		defer q.mu.Unlock()
		q.advance(now)
		for _, e := range q.dead {
			if e.t.ID == id {
				return deadLetter(e), nil
			}
		}
	}
	return queue.DeadLetter{}, fmt.Errorf("memory: dead letter %q of %q: %w", id, name, queue.ErrNotFound)
}

// deadSummary is deadLetter without the payload.
func deadSummary(e *entry) queue.DeadLetter {
	t := *e.t
	t.Payload = nil
	if e.t.Headers != nil {
		t.Headers = make(map[string]string, len(e.t.Headers))
		for k, v := range e.t.Headers {
			t.Headers[k] = v
		}
	}
	t.Attempt = e.attempts
	return queue.DeadLetter{Task: &t, Reason: e.reason, At: e.deadAt, PayloadSize: len(e.t.Payload)}
}
