package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

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

// waitSpace blocks until w is signalled (room freed, or Close) or ctx ends.
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
		return ctx.Err()
	}
}

// countNew counts the tasks insertAll would store: those whose key is
// neither refused (isDup) nor taken by an earlier task of the batch.
func (q *queueState) countNew(tasks []*task.Task, now int64) int {
	var seen map[string]struct{}
	if len(tasks) > 1 {
		seen = make(map[string]struct{}, len(tasks))
	}
	n := 0
	for _, t := range tasks {
		if q.isDup(t.Key, q.keys.hash(t.Key), now) {
			continue
		}
		if seen != nil {
			if _, ok := seen[t.Key]; ok {
				continue
			}
			seen[t.Key] = struct{}{}
		}
		n++
	}
	return n
}

// insertAll stores the tasks that are not duplicates and returns the
// earliest due time among the delayed ones (never if none).
func (q *queueState) insertAll(tasks []*task.Task, now int64) int64 {
	readied, first := 0, int64(never)
	for _, t := range tasks {
		h := q.keys.hash(t.Key)
		if q.isDup(t.Key, h, now) {
			q.markDup(t, h)
			continue
		}
		if ready, due := q.insert(t, h, now); ready {
			readied++
		} else {
			first = min(first, due)
		}
	}
	if readied > 0 {
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
		unlockAll()
		if err := full.waitSpace(ctx, w); err != nil {
			return err
		}
	}
}

// Lease blocks until a task of the queue is deliverable and leases up to
// max of them (max <= 0 means 1) for leaseFor (<= 0 means
// Options.DefaultLease); see queue.Consumer. The delivered tasks are
// shallow copies: their Payload and Headers are shared with the stored
// task and must be treated as read-only (use Task.Clone to keep a
// modifiable copy).
func (b *Backend) Lease(ctx context.Context, name string, max int, leaseFor time.Duration) ([]*queue.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.open(); err != nil {
		return nil, err
	}
	if max <= 0 {
		max = 1
	}
	if leaseFor <= 0 {
		leaseFor = b.opts.DefaultLease
	}
	q := b.queueFor(name)
	var w *waiter
	for {
		now := b.nanos()
		q.mu.Lock()
		if err := b.open(); err != nil {
			q.mu.Unlock()
			putWaiter(w)
			return nil, err
		}
		q.advance(now)
		if n := q.ready.len(); n > 0 {
			due := after(now, leaseFor)
			out := q.lease(min(n, max), due)
			if q.ready.len() > 0 && q.leaseWaiters.len() > 0 {
				q.wakeLeasers(q.ready.len())
			}
			q.mu.Unlock()
			b.schedule(due)
			putWaiter(w)
			return out, nil
		}
		if w == nil {
			w = getWaiter()
		}
		q.leaseWaiters.push(w)
		q.mu.Unlock()
		select {
		case <-w.ch:
		case <-ctx.Done():
			q.mu.Lock()
			if !q.leaseWaiters.remove(w) {
				<-w.ch // signalled meanwhile: pass the turn on
				q.wakeLeasers(q.ready.len())
			}
			q.mu.Unlock()
			putWaiter(w)
			return nil, ctx.Err()
		}
	}
}

// lease takes n ready entries and leases them until due.
func (q *queueState) lease(n int, due int64) []*queue.Delivery {
	var (
		out []*queue.Delivery
		ds  []delivery
	)
	if n == 1 {
		s := new(single)
		out, ds = s.out[:], s.l[:]
	} else {
		out, ds = make([]*queue.Delivery, n), make([]delivery, n)
	}
	until := q.b.timeOf(due)
	for i := range n {
		e := q.ready.pop()
		e.gen++
		e.attempts++
		e.state, e.due = stLeased, due
		q.leased.push(e)
		d := &ds[i]
		d.e, d.gen = e, e.gen
		d.t = *e.t
		d.t.Attempt = e.attempts
		d.d = queue.Delivery{Task: &d.t, LeaseUntil: until, Receipt: d}
		out[i] = &d.d
	}
	return out
}

// settle validates d and, with its queue locked and the lease still held,
// runs fn on its entry.
func (b *Backend) settle(d *queue.Delivery, fn func(q *queueState, e *entry, now int64)) error {
	if b.state.Load() == stateClosed {
		return queue.ErrClosed
	}
	if d == nil {
		return fmt.Errorf("memory: nil delivery: %w", queue.ErrLeaseLost)
	}
	r, ok := d.Receipt.(*delivery)
	if !ok || r.e == nil || r.e.q.b != b {
		return fmt.Errorf("memory: delivery was not made by this backend: %w", queue.ErrLeaseLost)
	}
	q, e := r.e.q, r.e
	now := b.nanos()
	q.mu.Lock()
	if b.state.Load() == stateClosed {
		q.mu.Unlock()
		return queue.ErrClosed
	}
	q.advance(now)
	if e.gen != r.gen || e.state != stLeased {
		q.mu.Unlock()
		return fmt.Errorf("memory: delivery %d of task %s: %w", r.t.Attempt, r.t.ID, queue.ErrLeaseLost)
	}
	fn(q, e, now)
	q.mu.Unlock()
	return nil
}

// Extend moves the end of d's lease to now+leaseFor (<= 0 means
// Options.DefaultLease), later or earlier than it was, and updates
// d.LeaseUntil.
func (b *Backend) Extend(_ context.Context, d *queue.Delivery, leaseFor time.Duration) error {
	if leaseFor <= 0 {
		leaseFor = b.opts.DefaultLease
	}
	var due int64
	err := b.settle(d, func(q *queueState, e *entry, now int64) {
		due = after(now, leaseFor)
		e.due = due
		q.leased.fix(e.idx)
	})
	if err == nil {
		// An earlier end than the timer is set for must wake the leasers.
		b.schedule(due)
		d.LeaseUntil = b.timeOf(due)
	}
	return err
}

// Ack settles d as done: the task is removed (its key is remembered for
// Options.DedupWindow).
func (b *Backend) Ack(_ context.Context, d *queue.Delivery) error {
	return b.settle(d, func(q *queueState, e *entry, now int64) {
		q.leased.remove(e.idx)
		q.live--
		q.release(e, now, task.Succeeded)
		q.wakeSpace()
		q.checkDrained()
	})
}

// Retry settles d as failed for now: the task is deliverable again at at
// (at once when at is not in the future).
func (b *Backend) Retry(_ context.Context, d *queue.Delivery, at time.Time) error {
	due := int64(never)
	err := b.settle(d, func(q *queueState, e *entry, now int64) {
		q.leased.remove(e.idx)
		if t := b.at(at); t > now {
			e.state, e.due = stDelayed, t
			q.delayed.push(e)
			due = t
		} else {
			e.state = stReady
			q.ready.push(e)
			q.wakeLeasers(1)
		}
		q.checkDrained()
	})
	if err == nil && due != never {
		b.schedule(due)
	}
	return err
}

// Release puts d back to the ready end of its queue at once, as if it had
// never been leased: the delivery's attempt is not counted (the next
// delivery has the same attempt number); see queue.Consumer.
func (b *Backend) Release(_ context.Context, d *queue.Delivery) error {
	return b.settle(d, func(q *queueState, e *entry, _ int64) {
		q.leased.remove(e.idx)
		e.attempts--
		e.state = stReady
		q.ready.push(e)
		q.wakeLeasers(1)
		q.checkDrained()
	})
}

// DeadLetter settles d as failed for good, keeping the task with reason.
func (b *Backend) DeadLetter(_ context.Context, d *queue.Delivery, reason string) error {
	return b.settle(d, func(q *queueState, e *entry, _ int64) {
		q.leased.remove(e.idx)
		q.kill(e, reason)
		q.wakeSpace()
		q.checkDrained()
	})
}

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
// but are never refused for lack of room.
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
// Options.DedupWindow, as after an ack.
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
