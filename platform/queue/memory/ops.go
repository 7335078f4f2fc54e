package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

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
	var (
		w  *waiter
		ds deliveries
	)
	for {
		if k := min(max, int(q.readyHint.Load())); k > len(ds.ds) {
			ds = newDeliveries(k)
		}
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
			n = min(n, max)
			if n > len(ds.ds) {
				ds = newDeliveries(n)
			}
			out := q.lease(ds.out[:n], ds.ds[:n], due)
			q.readyHint.Store(int64(q.ready.len()))
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
		ds = deliveries{} // not kept while waiting, which may be long
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

// deliveries is the memory of the deliveries one Lease hands out.
type deliveries struct {
	out []*queue.Delivery
	ds  []delivery
}

// newDeliveries allocates n deliveries and writes to each, which Lease
// does before it locks the queue: on a heap that grows (the peers
// harness's workload: every task enqueued before any is worked, no
// collection while they are worked) the memory is fresh, and its first
// write a page fault of several µs that would otherwise be taken with the
// queue locked, every worker's Ack waiting behind it. n == 1 costs one
// allocation.
func newDeliveries(n int) deliveries {
	var x deliveries
	if n == 1 {
		s := new(single)
		x.out, x.ds = s.out[:], s.l[:]
	} else {
		x.out, x.ds = make([]*queue.Delivery, n), make([]delivery, n)
	}
	for i := range x.ds {
		x.ds[i].gen = 0
	}
	return x
}

// lease takes len(ds) ready entries, leases them until due and returns
// them as out, whose length is len(ds).
func (q *queueState) lease(out []*queue.Delivery, ds []delivery, due int64) []*queue.Delivery {
	n := len(ds)
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

// Probe reports whether a Lease of the queue reaches it (queue.Prober):
// nil while the backend is open, which is all a memory queue needs.
func (b *Backend) Probe(ctx context.Context, _ string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.open()
}
