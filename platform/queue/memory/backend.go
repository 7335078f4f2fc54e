package memory

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plba/plba/platform/queue"
)

// Backend states.
const (
	stateOpen int32 = iota
	stateClosing
	stateClosed
)

// never is a due time that never comes.
const never = math.MaxInt64

// Backend is the in-memory queue backend. Create it with New; all methods
// are safe for concurrent use. Tasks live only as long as the process.
type Backend struct {
	opts      Options
	epoch     time.Time // times are kept as nanoseconds since epoch
	realClock bool      // Options.Now was nil: read the monotonic clock only

	state  atomic.Int32
	queues atomic.Pointer[map[string]*queueState] // copy on write
	mu     sync.Mutex                             // creation of queues, state changes
	done   chan struct{}                          // closed once the state is closed

	// The timer wakes blocked leasers when delayed tasks come due and
	// leases expire. It is a time.AfterFunc, so no goroutine exists while
	// it waits; wakeAt is when it fires (never when it is idle or a tick
	// is running).
	timerMu sync.Mutex
	timer   *time.Timer
	wakeAt  atomic.Int64
	tickMu  sync.Mutex // held by a running tick

	watch atomic.Pointer[func(queue.DeadLetter)] // see WatchDead
}

var (
	_ queue.Backend     = (*Backend)(nil)
	_ queue.DeadWatcher = (*Backend)(nil)
)

// WatchDead registers fn, called for every task the backend dead-letters
// on its own: one whose lease expired Options.MaxDeliveries times. It is
// called with the queue's lock held (see queue.DeadWatcher: fn must not
// block nor call the backend). A later call replaces fn; nil removes it.
func (b *Backend) WatchDead(fn func(queue.DeadLetter)) {
	if fn == nil {
		b.watch.Store(nil)
		return
	}
	b.watch.Store(&fn)
}

// reportDead tells the watcher of e, which the backend dead-lettered on
// its own.
func (b *Backend) reportDead(e *entry) {
	if fn := b.watch.Load(); fn != nil {
		(*fn)(deadLetter(e))
	}
}

// New returns an open in-memory backend. Invalid options (see
// Options.Validate) are replaced by their defaults; the platform's queue
// configuration (platform.QueueConfig) rejects them instead.
func New(opts Options) *Backend {
	real := opts.Now == nil
	opts = opts.WithDefaults()
	b := &Backend{opts: opts, epoch: opts.Now(), realClock: real, done: make(chan struct{})}
	empty := map[string]*queueState{}
	b.queues.Store(&empty)
	b.wakeAt.Store(never)
	b.timer = time.AfterFunc(time.Duration(math.MaxInt64), b.tick)
	b.timer.Stop()
	return b
}

// Options returns the options in effect (defaults applied).
func (b *Backend) Options() Options { return b.opts }

// nanos returns the backend's current time in nanoseconds since epoch.
func (b *Backend) nanos() int64 {
	if b.realClock {
		return int64(time.Since(b.epoch))
	}
	return int64(b.opts.Now().Sub(b.epoch))
}

// after returns now+d in nanoseconds since epoch, at most never: a
// duration meant as "for ever" (math.MaxInt64) must not wrap around to
// a time in the past.
func after(now int64, d time.Duration) int64 {
	if int64(d) > never-now {
		return never
	}
	return now + int64(d)
}

// at converts a time to nanoseconds since epoch.
func (b *Backend) at(t time.Time) int64 { return int64(t.Sub(b.epoch)) }

// timeOf converts nanoseconds since epoch to a time.
func (b *Backend) timeOf(n int64) time.Time { return b.epoch.Add(time.Duration(n)) }

// open fails unless the backend is open (every call but settlements).
func (b *Backend) open() error {
	if b.state.Load() != stateOpen {
		return queue.ErrClosed
	}
	return nil
}

// lookup returns the queue called name, or nil.
func (b *Backend) lookup(name string) *queueState {
	return (*b.queues.Load())[name]
}

// queueFor returns the queue called name, creating it.
func (b *Backend) queueFor(name string) *queueState {
	if q := b.lookup(name); q != nil {
		return q
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.queues.Load()
	if q := old[name]; q != nil {
		return q
	}
	m := make(map[string]*queueState, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	q := newQueueState(b, name)
	m[name] = q
	b.queues.Store(&m)
	return q
}

// schedule makes sure the timer fires no later than due.
func (b *Backend) schedule(due int64) {
	if due >= b.wakeAt.Load() {
		return
	}
	b.timerMu.Lock()
	if due < b.wakeAt.Load() && b.state.Load() != stateClosed {
		b.wakeAt.Store(due)
		b.timer.Reset(time.Duration(due - b.nanos()))
	}
	b.timerMu.Unlock()
}

// tick moves due tasks to ready and expires leases on every queue, waking
// blocked leasers, then sets the timer for the next due time.
func (b *Backend) tick() {
	b.tickMu.Lock()
	defer b.tickMu.Unlock()
	if b.state.Load() == stateClosed {
		return
	}
	b.wakeAt.Store(never)
	now := b.nanos()
	next := int64(never)
	for _, q := range *b.queues.Load() {
		q.mu.Lock()
		q.advance(now)
		next = min(next, q.nextDue())
		q.mu.Unlock()
	}
	if next != never {
		b.schedule(next)
	}
}

// Queues lists the queues the backend knows of (those declared, as the
// worker pools declare theirs when they start, and those enqueued to or
// leased from), sorted.
func (b *Backend) Queues(context.Context) ([]string, error) {
	if err := b.open(); err != nil {
		return nil, err
	}
	m := *b.queues.Load()
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// Declare makes queues known (queue.Declarer): Queues lists them before
// their first task.
func (b *Backend) Declare(_ context.Context, queues ...string) error {
	if err := b.open(); err != nil {
		return err
	}
	for _, name := range queues {
		b.queueFor(name)
	}
	return nil
}

// Stats returns the counts of queue; an unknown queue has all zero.
func (b *Backend) Stats(_ context.Context, name string) (queue.Stats, error) {
	if err := b.open(); err != nil {
		return queue.Stats{}, err
	}
	st := queue.Stats{Queue: name}
	q := b.lookup(name)
	if q == nil {
		return st, nil
	}
	now := b.nanos()
	q.mu.Lock()
	q.advance(now)
	st.Ready = int64(q.ready.len())
	st.Delayed = int64(len(q.delayed))
	st.InFlight = int64(len(q.leased))
	st.Dead = int64(len(q.dead))
	st.DeadDiscarded = q.discarded.total
	st.FinishedKeysForgotten = q.forgotten.total
	q.mu.Unlock()
	return st, nil
}

// Close stops new leases and enqueues (blocked Lease and Enqueue calls
// return queue.ErrClosed) and waits until every in-flight delivery is
// settled, its lease expires, or ctx ends; settlements during that wait
// succeed. Tasks still stored are dropped: this backend is not durable.
// When ctx ends first, Close returns an error wrapping ctx.Err() and the
// backend is closed all the same. Close is idempotent.
func (b *Backend) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.state.Load() == stateOpen {
		b.state.Store(stateClosing)
		for _, q := range *b.queues.Load() {
			q.mu.Lock()
			q.leaseWaiters.signalAll()
			q.spaceWaiters.signalAll()
			q.mu.Unlock()
		}
	}
	b.mu.Unlock()

	var err error
wait:
	for _, q := range *b.queues.Load() {
		q.mu.Lock()
		if len(q.leased) == 0 {
			q.mu.Unlock()
			continue
		}
		if q.drained == nil {
			q.drained = make(chan struct{})
		}
		ch := q.drained
		q.mu.Unlock()
		select {
		case <-ch:
		case <-b.done:
			break wait
		case <-ctx.Done():
			err = fmt.Errorf("memory: close: %d deliveries unsettled: %w", b.inFlight(), ctx.Err())
			break wait
		}
	}

	b.mu.Lock()
	if b.state.Load() != stateClosed {
		b.state.Store(stateClosed)
		close(b.done)
		b.timerMu.Lock()
		b.timer.Stop()
		b.wakeAt.Store(never)
		b.timerMu.Unlock()
	}
	b.mu.Unlock()
	// Wait for a tick that may be running.
	b.tickMu.Lock()
	b.tickMu.Unlock() //nolint:staticcheck // empty critical section: waiting is the point
	return err
}

// inFlight counts the leased deliveries of all queues.
func (b *Backend) inFlight() int {
	n := 0
	for _, q := range *b.queues.Load() {
		q.mu.Lock()
		n += len(q.leased)
		q.mu.Unlock()
	}
	return n
}
