package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// Enqueue stores tasks on their queues; see queue.Producer. The backend
// keeps the *task.Task values themselves (after Task.Prepare), so the
// caller must not modify them afterwards. A batch is stored as a whole:
// when a queue lacks room for its share, nothing is stored until there is
// room for all of it (or, with FailFast, Enqueue returns queue.ErrFull). A
// batch whose new tasks (duplicates need no room) outnumber a queue's
// capacity fails with queue.ErrFull at once.
func (b *Backend) Enqueue(ctx context.Context, tasks ...*task.Task) error {
	if err := b.open(); err != nil {
		return err
	}
	if len(tasks) == 0 {
		return nil
	}
	name, same := "", true
	for i, t := range tasks {
		if t == nil {
			return fmt.Errorf("memory: task %d of %d is nil: %w", i+1, len(tasks), queue.ErrInvalidTask)
		}
		if t.Kind == "" || t.Queue == "" {
			return fmt.Errorf("memory: task %d of %d (kind %q, queue %q): kind and queue are required: %w",
				i+1, len(tasks), t.Kind, t.Queue, queue.ErrInvalidTask)
		}
		if i == 0 {
			name = t.Queue
		} else if t.Queue != name {
			same = false
		}
	}
	nowT := b.opts.Now()
	for _, t := range tasks {
		t.Prepare(nowT)
	}
	if same {
		return b.enqueueOne(ctx, b.queueFor(name), tasks)
	}
	return b.enqueueMany(ctx, tasks)
}

// enqueueOne is Enqueue of a batch for one queue.
func (b *Backend) enqueueOne(ctx context.Context, q *queueState, tasks []*task.Task) error {
	var w *waiter
	defer func() { putWaiter(w) }()
	for {
		now := b.nanos()
		q.mu.Lock()
		if err := b.open(); err != nil {
			q.mu.Unlock()
			return err
		}
		q.advance(now)
		q.pruneKeys(now)
		need := len(tasks)
		if q.live+need > b.opts.Capacity {
			need = q.countNew(tasks, now)
		}
		if q.live+need <= b.opts.Capacity {
			due := q.insertAll(tasks, now)
			q.mu.Unlock()
			if due != never {
				b.schedule(due)
			}
			return nil
		}
		if err := q.fullErr(need); err != nil {
			q.mu.Unlock()
			return err
		}
		if w == nil {
			w = getWaiter()
		}
		w.need = need
		q.spaceWaiters.push(w)
		// A waiter woken for room that another Enqueue took meanwhile
		// waits again, behind the others: one of those may fit the room
		// left, and nothing else would wake it.
		q.wakeSpace()
		q.mu.Unlock()
		if err := q.waitSpace(ctx, w); err != nil {
			return err
		}
	}
}

// fullErr returns the error for a batch needing need slots of a full
// queue, or nil when the caller should wait.
func (q *queueState) fullErr(need int) error {
	c := q.b.opts.Capacity
	if need > c {
		return fmt.Errorf("memory: batch of %d tasks exceeds the capacity %d of queue %q: %w", need, c, q.name, queue.ErrFull)
	}
	if q.b.opts.FailFast {
		return fmt.Errorf("memory: queue %q holds %d of %d tasks, %d more do not fit: %w", q.name, q.live, c, need, queue.ErrFull)
	}
	return nil
}

// waitSpace blocks until w is signalled (room freed, or Close) or ctx ends
// (its error then says that the queue was full).
func (q *queueState) waitSpace(ctx context.Context, w *waiter) error {
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		q.mu.Lock()
		if !q.spaceWaiters.remove(w) {
			<-w.ch // signalled meanwhile: pass the turn on
			q.wakeSpace()
		}
		q.mu.Unlock()
		return fmt.Errorf("memory: queue %q is full (capacity %d): waiting for room: %w", q.name, q.b.opts.Capacity, ctx.Err())
	}
}

// countNew counts the tasks insertAll would store: those whose key is
// neither refused (isDup) nor taken by an earlier task of the batch.
func (q *queueState) countNew(tasks []*task.Task, now int64) int {
	var seen map[keyID]struct{}
	if len(tasks) > 1 {
		seen = make(map[keyID]struct{}, len(tasks))
	}
	n := 0
	for _, t := range tasks {
		made := t.KeyGenerated()
		if q.isDup(t, q.keys.hash(t.Key, made), now) {
			continue
		}
		if seen != nil {
			id := keyID{t.Key, made}
			if _, ok := seen[id]; ok {
				continue
			}
			seen[id] = struct{}{}
		}
		n++
	}
	return n
}

// insertAll stores the tasks that are not duplicates and returns the
// earliest due time among the delayed ones (never if none).
func (q *queueState) insertAll(tasks []*task.Task, now int64) int64 {
	readied, first, batch := 0, int64(never), q.seq
	for _, t := range tasks {
		h := q.keys.hash(t.Key, t.KeyGenerated())
		if q.isDup(t, h, now) {
			q.markDup(t, h, batch)
			continue
		}
		if ready, due := q.insert(t, h, now); ready {
			readied++
		} else {
			first = min(first, due)
		}
	}
	if readied > 0 {
		q.readyHint.Store(int64(q.ready.len()))
		q.wakeLeasers(readied)
	}
	return first
}

// enqueueMany is Enqueue of a batch spanning several queues: all of them
// are locked (in name order) so the batch is stored as a whole.
func (b *Backend) enqueueMany(ctx context.Context, tasks []*task.Task) error {
	groups := map[*queueState][]*task.Task{}
	var qs []*queueState
	for _, t := range tasks {
		q := b.queueFor(t.Queue)
		if _, ok := groups[q]; !ok {
			qs = append(qs, q)
		}
		groups[q] = append(groups[q], t)
	}
	slices.SortFunc(qs, func(a, b *queueState) int { return strings.Compare(a.name, b.name) })
	unlockAll := func() {
		for _, q := range qs {
			q.mu.Unlock()
		}
	}
	var w *waiter
	defer func() { putWaiter(w) }()
	for {
		now := b.nanos()
		for _, q := range qs {
			q.mu.Lock()
		}
		if err := b.open(); err != nil {
			unlockAll()
			return err
		}
		var full *queueState
		need := 0
		for _, q := range qs {
			q.advance(now)
			q.pruneKeys(now)
			if q.live+len(groups[q]) <= b.opts.Capacity {
				continue // fits even if none is a duplicate
			}
			if n := q.countNew(groups[q], now); q.live+n > b.opts.Capacity {
				full, need = q, n
				break
			}
		}
		if full == nil {
			first := int64(never)
			for _, q := range qs {
				first = min(first, q.insertAll(groups[q], now))
			}
			unlockAll()
			if first != never {
				b.schedule(first)
			}
			return nil
		}
		if err := full.fullErr(need); err != nil {
			unlockAll()
			return err
		}
		if w == nil {
			w = getWaiter()
		}
		w.need = need
		full.spaceWaiters.push(w)
		full.wakeSpace() // as in enqueueOne
		unlockAll()
		if err := full.waitSpace(ctx, w); err != nil {
			return err
		}
	}
}
