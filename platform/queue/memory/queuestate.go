package memory

import (
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// discardLogEvery is how often, at most, a queue logs that it discards
// dead letters (with the count since its last such line).
const discardLogEvery = time.Minute

// maxFree bounds the recycled entries kept per queue.
const maxFree = 4096

// keyExpiry is a remembered key (a producer's) in the order its window
// ends.
type keyExpiry struct {
	key   string
	h     uint64
	until int64
}

// queueState is one queue. Everything in it is guarded by mu.
type queueState struct {
	b    *Backend
	name string
	mu   sync.Mutex

	ready   ring      // deliverable now, in order
	delayed entryHeap // by due time
	leased  entryHeap // by lease end
	dead    []*entry  // oldest first
	live    int       // ready + delayed + leased: what counts against capacity
	seq     uint64
	deadSeq uint64 // last dead letter's entry.deadSeq

	keys       keyIndex
	recent     []keyExpiry // keys remembered after their task ended, oldest first
	recentHead int

	free []*entry // recycled entries

	// readyHint is about how many tasks are ready (stored by Lease and
	// Enqueue before they unlock mu): Lease allocates that many
	// deliveries, up to its max, before it locks mu.
	readyHint atomic.Int64

	// discarded counts the dead letters dropped at Options.MaxDead,
	// forgotten the keys the bound (Options.MaxFinishedKeys) forgot
	// before their window ended.
	discarded, forgotten boundCount

	leaseWaiters waitList
	spaceWaiters waitList
	drained      chan struct{} // made by Close; closed when leased empties
}

func newQueueState(b *Backend, name string) *queueState {
	return &queueState{b: b, name: name, keys: newKeyIndex()}
}

// newEntry returns a recycled or new entry for t.
func (q *queueState) newEntry(t *task.Task) *entry {
	var e *entry
	if n := len(q.free); n > 0 {
		e = q.free[n-1]
		q.free[n-1] = nil
		q.free = q.free[:n-1]
	} else {
		e = &entry{q: q}
	}
	e.t, e.attempts, e.expiries, e.idx = t, 0, 0, -1
	e.seq = q.seq
	q.seq++
	return e
}

// release forgets e's task (keeping a producer's key for the window,
// with the outcome it ended with and, for a dead letter, its reason) and
// recycles e. A key Prepare generated is not kept: only the call that
// made it can send it again (task.KeyGenerated), and this backend's
// Enqueue stores a batch whole or fails. Kept, it doubled the backend's
// cost per keyless task with the host's default window
// (BenchmarkCycleHostDefaults), and a busy queue's keyless tasks filled
// the bound and pushed producers' keys out before their window ended.
func (q *queueState) release(e *entry, now int64, o task.Outcome) {
	if w := q.b.opts.DedupWindow; w > 0 && !e.t.KeyGenerated() {
		until := after(now, w)
		ref := keyRef{until: until, outcome: o}
		if o == task.DeadLettered {
			ref.reason = e.reason
		}
		h := q.keys.keep(e, ref)
		q.recent = append(q.recent, keyExpiry{key: e.t.Key, h: h, until: until})
		for len(q.recent)-q.recentHead > q.b.opts.MaxFinishedKeys {
			// The bound: the oldest key's window ends early.
			if k, ok := q.forgetOldest(); ok && k.until > now {
				q.forgotEarly(k.key, now)
			}
		}
	} else {
		q.keys.drop(e)
	}
	e.t, e.reason, e.state = nil, "", stFree
	if len(q.free) < maxFree {
		q.free = append(q.free, e)
	}
}

// pruneKeys forgets keys whose window has ended.
func (q *queueState) pruneKeys(now int64) {
	for q.recentHead < len(q.recent) && q.recent[q.recentHead].until <= now {
		q.forgetOldest()
	}
	if q.recentHead == len(q.recent) {
		q.recent, q.recentHead = q.recent[:0], 0
	} else if q.recentHead > 1024 && q.recentHead > len(q.recent)/2 {
		n := copy(q.recent, q.recent[q.recentHead:])
		q.recent, q.recentHead = q.recent[:n], 0
	}
}

// forgetOldest forgets the oldest remembered key (unless its key was
// taken again since, by a live task or a later window) and returns it,
// with whether it was forgotten.
func (q *queueState) forgetOldest() (k keyExpiry, forgot bool) {
	k = q.recent[q.recentHead]
	if ref, ok := q.keys.get(k.key, false, k.h); ok && ref.e == nil && ref.until == k.until {
		q.keys.del(k.key, false, k.h)
		forgot = true
	}
	q.recent[q.recentHead] = keyExpiry{}
	q.recentHead++
	return k, forgot
}

// forgotEarly counts key, which the bound forgot before its window
// ended, and logs at most once per discardLogEvery.
func (q *queueState) forgotEarly(key string, now int64) {
	if since := q.forgotten.add(now); since > 0 {
		q.b.opts.Logger.Warn("finished-key bound reached: oldest key forgotten before its de-duplication window ended",
			zap.String("queue", q.name), zap.Int("max_finished_keys", q.b.opts.MaxFinishedKeys),
			zap.Duration("dedup_window", q.b.opts.DedupWindow),
			zap.Int64("forgotten_since_last_report", since),
			zap.Int64("forgotten_total", q.forgotten.total), zap.String("key", key))
	}
}

// boundCount counts what a bound of a queue dropped, and says when to
// log it: the first time, then at most once per discardLogEvery.
type boundCount struct {
	total, logged int64 // logged: total at the latest log line
	loggedAt      int64 // unix nanoseconds of that line
}

// add counts one more at now (unix nanoseconds) and returns how many
// were counted since the latest log line when a line is due, else 0.
func (c *boundCount) add(now int64) (since int64) {
	c.total++
	if c.logged != 0 && now-c.loggedAt < int64(discardLogEvery) {
		return 0
	}
	since = c.total - c.logged
	c.logged, c.loggedAt = c.total, now
	return since
}

// isDup reports whether t's key (whose hash is h) is refused at now.
func (q *queueState) isDup(t *task.Task, h uint64, now int64) bool {
	ref, ok := q.keys.get(t.Key, t.KeyGenerated(), h)
	return ok && (ref.e != nil || ref.until > now)
}

// markDup marks t, a duplicate being dropped, with what holds its key: how
// the task of its key finished, when it did (a dead letter still kept, or
// a key remembered after its task ended), or the live task (queued,
// delayed or in flight) that holds it. t enqueued again while it (or a
// task with its ID) is live is that task, not a duplicate of another: it
// is marked stored already (task.MarkStoredAgain), not held. The mark goes
// on t only, never on the stored task: when t is the very task kept (as a
// live task or a dead letter), the backend keeps a copy of its own. The
// very Task twice in one batch is stored by the batch (entries from seq
// batch on are its own), and not marked. Nor does it go into t's headers map: t may be a task
// this backend stored before, whose deliveries share that map (Lease
// copies the Task, not its headers), and a late handler of one (its lease
// ran out) may still read it. t gets a copy of its headers with the mark.
func (q *queueState) markDup(t *task.Task, h, batch uint64) {
	ref, ok := q.keys.get(t.Key, t.KeyGenerated(), h)
	switch {
	case !ok:
	case ref.e != nil && ref.e.state == stDead:
		if ref.e.t == t {
			ref.e.t = t.Clone()
		}
		t.Headers = maps.Clone(t.Headers)
		task.MarkFinished(t, task.DeadLettered, ref.e.reason)
	case ref.e != nil && ref.e.t.ID == t.ID:
		if ref.e.t == t && ref.e.seq >= batch {
			return // this very call stored t, earlier in its batch
		}
		if ref.e.t == t {
			ref.e.t = t.Clone()
		}
		task.MarkStoredAgain(t)
	case ref.e != nil:
		t.Headers = maps.Clone(t.Headers)
		task.MarkHeld(t, ref.e.t.ID)
	case ref.outcome.Final():
		t.Headers = maps.Clone(t.Headers)
		task.MarkFinished(t, ref.outcome, ref.reason)
	}
}

// insert stores t (not a duplicate) and returns whether it is ready now.
func (q *queueState) insert(t *task.Task, h uint64, now int64) (ready bool, due int64) {
	e := q.newEntry(t)
	q.keys.add(e, h)
	q.live++
	if !t.NotBefore.IsZero() {
		if due = q.b.at(t.NotBefore); due > now {
			e.state, e.due = stDelayed, due
			q.delayed.push(e)
			return false, due
		}
	}
	e.state = stReady
	q.ready.push(e)
	return true, 0
}

// advance moves due delayed tasks to ready and expires leases that ended,
// waking leasers and enqueuers as that frees work or room.
func (q *queueState) advance(now int64) {
	moved, freed, settled := 0, 0, 0
	for len(q.delayed) > 0 && q.delayed.min().due <= now {
		e := q.delayed.pop()
		e.state = stReady
		q.ready.push(e)
		moved++
	}
	for len(q.leased) > 0 && q.leased.min().due <= now {
		e := q.leased.pop()
		e.expiries++
		settled++
		if max := q.b.opts.MaxDeliveries; max > 0 && e.expiries >= max {
			q.kill(e, fmt.Sprintf("lease expired %d times", e.expiries))
			q.b.reportDead(e)
			freed++
			continue
		}
		e.state = stReady
		q.ready.push(e)
		moved++
	}
	if moved > 0 {
		q.wakeLeasers(moved)
	}
	if freed > 0 {
		q.wakeSpace()
	}
	if settled > 0 {
		q.checkDrained()
	}
}

// kill moves e (taken out of its heap) to the dead letter. A queue that
// holds Options.MaxDead dead letters already discards its oldest one.
func (q *queueState) kill(e *entry, reason string) {
	e.state, e.reason, e.deadAt = stDead, reason, q.b.opts.Now()
	q.deadSeq++
	e.deadSeq = q.deadSeq
	q.dead = append(q.dead, e)
	q.live--
	if len(q.dead) > q.b.opts.MaxDead {
		q.discardOldest(e.deadAt)
	}
}

// discardOldest drops the oldest dead letter (its key is remembered for
// the de-duplication window, as after a purge), counts it and logs at most
// once per discardLogEvery.
func (q *queueState) discardOldest(now time.Time) {
	old := q.dead[0]
	q.dead[0] = nil
	q.dead = q.dead[1:]
	id, reason := old.t.ID, old.reason
	q.release(old, q.b.nanos(), task.DeadLettered)
	if since := q.discarded.add(now.UnixNano()); since > 0 {
		q.b.opts.Logger.Warn("dead-letter bound reached: oldest dead letter discarded",
			zap.String("queue", q.name), zap.Int("max_dead", q.b.opts.MaxDead),
			zap.Int64("discarded_since_last_report", since),
			zap.Int64("discarded_total", q.discarded.total),
			zap.String("task", id), zap.String("reason", reason))
	}
}

// deadLetter is the queue.DeadLetter of e, a dead entry.
func deadLetter(e *entry) queue.DeadLetter {
	t := e.t.Clone()
	t.Attempt = e.attempts
	return queue.DeadLetter{Task: t, Reason: e.reason, At: e.deadAt, PayloadSize: len(t.Payload)}
}

// nextDue is the earliest time something happens on its own.
func (q *queueState) nextDue() int64 {
	next := int64(never)
	if len(q.delayed) > 0 {
		next = q.delayed.min().due
	}
	if len(q.leased) > 0 {
		next = min(next, q.leased.min().due)
	}
	return next
}

// wakeLeasers signals up to n blocked leasers.
func (q *queueState) wakeLeasers(n int) {
	for ; n > 0 && q.leaseWaiters.len() > 0; n-- {
		q.leaseWaiters.popSignal()
	}
}

// wakeSpace signals blocked enqueuers, in order, while their needs fit.
func (q *queueState) wakeSpace() {
	avail := q.b.opts.Capacity - q.live
	for q.spaceWaiters.len() > 0 {
		w := q.spaceWaiters.front()
		if w.need > avail {
			return
		}
		avail -= w.need
		q.spaceWaiters.popSignal()
	}
}

// checkDrained tells a waiting Close when nothing is in flight any more.
func (q *queueState) checkDrained() {
	if q.drained != nil && len(q.leased) == 0 {
		close(q.drained)
		q.drained = nil
	}
}

// waiterPool recycles waiters; a waiter is put back only with an empty
// channel and out of every list.
var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan struct{}, 1)} }}

func getWaiter() *waiter { return waiterPool.Get().(*waiter) }

func putWaiter(w *waiter) {
	if w != nil {
		w.need = 0
		waiterPool.Put(w)
	}
}
