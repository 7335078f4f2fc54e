package worker_test

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// fakeBackend is a small in-memory queue.Backend for the worker's tests:
// unbounded, no de-duplication, with Release (no attempt counted).
type fakeBackend struct {
	mu      sync.Mutex
	notify  chan struct{}
	closed  bool
	seq     int64
	entries map[string][]*fakeEntry // queue -> waiting (ready or delayed)
	leased  map[int64]*fakeEntry
	dead    map[string][]queue.DeadLetter
	retries []time.Time // requested retry times, in order
}

type fakeEntry struct {
	t       *task.Task
	at      time.Time
	attempt int
	receipt int64
	until   time.Time
	release bool // returned by Release: do not count an attempt
}

func newFake() *fakeBackend {
	return &fakeBackend{notify: make(chan struct{}), entries: map[string][]*fakeEntry{},
		leased: map[int64]*fakeEntry{}, dead: map[string][]queue.DeadLetter{}}
}

func (f *fakeBackend) wakeLocked() {
	close(f.notify)
	f.notify = make(chan struct{})
}

func (f *fakeBackend) Enqueue(_ context.Context, tasks ...*task.Task) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return queue.ErrClosed
	}
	for _, t := range tasks {
		if t.Kind == "" || t.Queue == "" {
			return queue.ErrInvalidTask
		}
		t.Prepare(time.Now())
		f.entries[t.Queue] = append(f.entries[t.Queue], &fakeEntry{t: t, at: t.NotBefore})
	}
	f.wakeLocked()
	return nil
}

func (f *fakeBackend) expireLocked(now time.Time) {
	for r, e := range f.leased {
		if now.After(e.until) {
			delete(f.leased, r)
			e.at = now
			f.entries[e.t.Queue] = append(f.entries[e.t.Queue], e)
		}
	}
}

func (f *fakeBackend) Lease(ctx context.Context, q string, max int, leaseFor time.Duration) ([]*queue.Delivery, error) {
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return nil, queue.ErrClosed
		}
		now := time.Now()
		f.expireLocked(now)
		var out []*queue.Delivery
		rest := f.entries[q][:0]
		next := time.Time{}
		for _, e := range f.entries[q] {
			if len(out) < max && !e.at.After(now) {
				if !e.release {
					e.attempt++
				}
				e.release = false
				f.seq++
				e.receipt, e.until = f.seq, now.Add(leaseFor)
				f.leased[e.receipt] = e
				c := e.t.Clone()
				c.Attempt = e.attempt
				out = append(out, &queue.Delivery{Task: c, LeaseUntil: e.until, Receipt: e.receipt})
				continue
			}
			if next.IsZero() || e.at.Before(next) {
				next = e.at
			}
			rest = append(rest, e)
		}
		f.entries[q] = rest
		for _, e := range f.leased {
			if next.IsZero() || e.until.Before(next) {
				next = e.until
			}
		}
		ch := f.notify
		f.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = time.Until(next) + time.Millisecond
		}
		tm := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			tm.Stop()
			return nil, ctx.Err()
		case <-ch:
		case <-tm.C:
		}
		tm.Stop()
	}
}

func (f *fakeBackend) take(d *queue.Delivery) (*fakeEntry, error) {
	r, _ := d.Receipt.(int64)
	e, ok := f.leased[r]
	if !ok || time.Now().After(e.until) {
		return nil, queue.ErrLeaseLost
	}
	delete(f.leased, r)
	return e, nil
}

func (f *fakeBackend) Extend(_ context.Context, d *queue.Delivery, leaseFor time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, _ := d.Receipt.(int64)
	e, ok := f.leased[r]
	if !ok || time.Now().After(e.until) {
		return queue.ErrLeaseLost
	}
	e.until = time.Now().Add(leaseFor)
	return nil
}

func (f *fakeBackend) Ack(_ context.Context, d *queue.Delivery) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.take(d)
	return err
}

func (f *fakeBackend) Retry(_ context.Context, d *queue.Delivery, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.take(d)
	if err != nil {
		return err
	}
	f.retries = append(f.retries, at)
	e.at = at
	f.entries[e.t.Queue] = append(f.entries[e.t.Queue], e)
	f.wakeLocked()
	return nil
}

func (f *fakeBackend) Release(_ context.Context, d *queue.Delivery) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.take(d)
	if err != nil {
		return err
	}
	e.at, e.release = time.Now(), true
	f.entries[e.t.Queue] = append(f.entries[e.t.Queue], e)
	f.wakeLocked()
	return nil
}

func (f *fakeBackend) DeadLetter(_ context.Context, d *queue.Delivery, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.take(d)
	if err != nil {
		return err
	}
	c := e.t.Clone()
	c.Attempt = e.attempt
	f.dead[e.t.Queue] = append(f.dead[e.t.Queue], queue.DeadLetter{Task: c, Reason: reason, At: time.Now()})
	return nil
}

func (f *fakeBackend) ListDead(_ context.Context, q string, _ int) ([]queue.DeadLetter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]queue.DeadLetter(nil), f.dead[q]...), nil
}

func (f *fakeBackend) Redrive(context.Context, string, ...string) (int, error) { return 0, nil }
func (f *fakeBackend) Purge(context.Context, string, ...string) (int, error)   { return 0, nil }

func (f *fakeBackend) Stats(_ context.Context, q string) (queue.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := queue.Stats{Queue: q, Dead: int64(len(f.dead[q]))}
	now := time.Now()
	for _, e := range f.entries[q] {
		if e.at.After(now) {
			s.Delayed++
		} else {
			s.Ready++
		}
	}
	for _, e := range f.leased {
		if e.t.Queue == q {
			s.InFlight++
		}
	}
	return s, nil
}

func (f *fakeBackend) Queues(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for q := range f.entries {
		out = append(out, q)
	}
	sort.Strings(out)
	return out, nil
}

func (f *fakeBackend) Close(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		f.wakeLocked()
	}
	return nil
}

func (f *fakeBackend) retryTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.retries...)
}
