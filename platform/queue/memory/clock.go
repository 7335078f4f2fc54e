package memory

import "time"

// NextDue returns the earliest time, by Options.Now, at which something
// happens on its own on any queue: a delayed task (a retry, a NotBefore)
// comes due or a lease ends. ok is false when nothing is scheduled. With
// a fake clock (Options.Now) a test moves its clock there, then calls
// Wake.
func (b *Backend) NextDue() (at time.Time, ok bool) {
	next := int64(never)
	for _, q := range *b.queues.Load() {
		q.mu.Lock()
		next = min(next, q.nextDue())
		q.mu.Unlock()
	}
	if next == never {
		return time.Time{}, false
	}
	return b.timeOf(next), true
}

// Wake judges every due time against Options.Now at once: delayed tasks
// that came due become ready, ended leases expire, and blocked Lease calls
// are woken. The backend does this itself on a real timer; a test whose
// fake clock (Options.Now) jumped forward calls Wake instead of waiting
// for that timer.
func (b *Backend) Wake() { b.tick() }
