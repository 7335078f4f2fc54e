package memory

import (
	"time"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// Entry states.
const (
	stFree uint8 = iota
	stReady
	stDelayed
	stLeased
	stDead
)

// entry is one stored task. Entries are recycled per queue; gen grows with
// every lease so that a stale receipt never matches a later delivery.
type entry struct {
	q        *queueState
	t        *task.Task // the stored task; never written after Enqueue
	due      int64      // delayed: when ready; leased: when the lease ends
	seq      uint64     // enqueue order, to break ties in the heaps
	kh       uint64     // hash of t.Key in the queue's key index; its counter when kpage
	gen      uint64     // bumped on every lease
	idx      int        // position in the heap holding it, -1 if none
	attempts int        // deliveries so far
	expiries int        // leases that ended without a settlement
	state    uint8
	kspill   bool      // t.Key is in the key index's spill (keyIndex.set)
	kpage    bool      // t.Key is in the key index's pages (keyIndex.add)
	reason   string    // dead-letter reason
	deadAt   time.Time // when it was dead-lettered
	deadSeq  uint64    // order among the queue's dead letters (QueryDead's cursor)
}

// delivery is what Lease hands out: the Delivery, its own shallow copy of
// the task (with this delivery's attempt), and the receipt fields (the
// entry, with its queue, and the lease's generation). A pointer to it is
// the Delivery's Receipt.
type delivery struct {
	d   queue.Delivery
	t   task.Task
	e   *entry
	gen uint64
}

// single lets a one-task lease cost one allocation.
type single struct {
	out [1]*queue.Delivery
	l   [1]delivery
}

// ring is a FIFO of entries in a power-of-two ring buffer.
type ring struct {
	buf  []*entry
	head int
	n    int
}

func (r *ring) len() int { return r.n }

func (r *ring) push(e *entry) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = e
	r.n++
}

func (r *ring) pop() *entry {
	e := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return e
}

func (r *ring) grow() {
	size := 2 * len(r.buf)
	if size == 0 {
		size = 16
	}
	buf := make([]*entry, size)
	for i := 0; i < r.n; i++ {
		buf[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
	}
	r.buf, r.head = buf, 0
}

// entryHeap is a min-heap of entries by (due, seq) that keeps each entry's
// index, so entries can be removed or re-keyed in O(log n).
type entryHeap []*entry

func (h entryHeap) less(i, j int) bool {
	a, b := h[i], h[j]
	return a.due < b.due || (a.due == b.due && a.seq < b.seq)
}

func (h entryHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}

func (h *entryHeap) push(e *entry) {
	e.idx = len(*h)
	*h = append(*h, e)
	h.up(e.idx)
}

// min returns the earliest entry; the heap must not be empty.
func (h entryHeap) min() *entry { return h[0] }

func (h *entryHeap) pop() *entry { return h.remove(0) }

func (h *entryHeap) remove(i int) *entry {
	old := *h
	n := len(old) - 1
	if i != n {
		old.swap(i, n)
	}
	e := old[n]
	old[n] = nil
	*h = old[:n]
	if i < n && !h.down(i) {
		h.up(i)
	}
	e.idx = -1
	return e
}

func (h entryHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h entryHeap) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		j = i
	}
}

func (h entryHeap) down(i0 int) bool {
	i, n := i0, len(h)
	for {
		j := 2*i + 1
		if j >= n || j < 0 {
			break
		}
		if r := j + 1; r < n && h.less(r, j) {
			j = r
		}
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}

// waiter is a blocked Lease or Enqueue. ch has room for one signal; whoever
// removes the waiter from its list sends it.
type waiter struct {
	ch   chan struct{}
	need int // slots a blocked Enqueue needs
}

// waitList is a FIFO of waiters.
type waitList struct{ ws []*waiter }

func (l *waitList) len() int { return len(l.ws) }

func (l *waitList) push(w *waiter) { l.ws = append(l.ws, w) }

func (l *waitList) front() *waiter { return l.ws[0] }

// popSignal removes the first waiter and signals it.
func (l *waitList) popSignal() {
	w := l.ws[0]
	copy(l.ws, l.ws[1:])
	l.ws[len(l.ws)-1] = nil
	l.ws = l.ws[:len(l.ws)-1]
	w.ch <- struct{}{}
}

// remove takes w out of the list; false means it was not there (it has
// been signalled already).
func (l *waitList) remove(w *waiter) bool {
	for i, x := range l.ws {
		if x == w {
			copy(l.ws[i:], l.ws[i+1:])
			l.ws[len(l.ws)-1] = nil
			l.ws = l.ws[:len(l.ws)-1]
			return true
		}
	}
	return false
}

// signalAll empties the list, signalling everyone.
func (l *waitList) signalAll() {
	for l.len() > 0 {
		l.popSignal()
	}
}
