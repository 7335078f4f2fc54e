package jetstream

import (
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// The runtime's watchers: what the backend finds on its own, outside any
// settlement call, that a task's source must hear of (queue.DeadWatcher,
// queue.FinishedWatcher).

// WatchDead registers fn, called once for each dead letter the backend
// makes on its own: a task the server stopped delivering after
// Config.MaxDeliver deliveries (its lease expired on the last one, or
// Close could not give it back from the prefetch buffer and stored its
// dead letter: giveBack), or a message on a work stream that is not a
// task. fn runs after the dead
// letter is stored and before the work message is deleted, so a crash in
// between calls it again (at least once; in the process that takes the
// advisory next). A handling that fails after fn was called and is tried
// again by the same process does not call it again. fn may be called from several
// goroutines and must not block for long. It is told the dead letter as
// stored (reason, time, attempt), also when the copy was stored before by
// another path (a DeadLetter whose term was lost). Register it before the first
// Lease: advisories are read from then on (or from this call), and
// wait in their stream until then.
func (b *Backend) WatchDead(fn func(queue.DeadLetter)) {
	b.watchMu.Lock()
	b.watchFn = fn
	b.watchMu.Unlock()
	if b.started.Load() {
		if err := b.startAdvisories(); err != nil {
			b.log.Error("jetstream: read advisories", zap.Error(err))
		}
	}
}

var _ queue.DeadWatcher = (*Backend)(nil)

// toldDead calls the registered watcher, if any, and reports whether
// there was one.
func (b *Backend) toldDead(dl queue.DeadLetter) bool {
	b.watchMu.Lock()
	fn := b.watchFn
	b.watchMu.Unlock()
	if fn != nil {
		fn(dl)
	}
	return fn != nil
}

// tellDeadOnce tells the watcher of dl, the dead letter of q's message
// seq, unless this process told it already: a handling that failed after
// telling (the key's marker, the deletion or termination) and is tried
// again does not tell again, nor is the one dead letter counted twice.
func (b *Backend) tellDeadOnce(q *queueState, seq uint64, dl queue.DeadLetter) {
	if !q.toldBefore(seq) && b.toldDead(dl) {
		q.markTold(seq)
	}
}

// WatchFinished registers fn, called for each task with a source
// (task.HeaderCompletion) that a delivery found succeeded already and
// removed (dropFinished), so that its source is told. fn is called from
// the goroutine that leases and must not block for long.
func (b *Backend) WatchFinished(fn func(*task.Task)) {
	b.watchMu.Lock()
	b.finishedFn = fn
	b.watchMu.Unlock()
}

var _ queue.FinishedWatcher = (*Backend)(nil)

// toldFinished calls the WatchFinished function, if any.
func (b *Backend) toldFinished(t *task.Task) {
	b.watchMu.Lock()
	fn := b.finishedFn
	b.watchMu.Unlock()
	if fn != nil {
		fn(t)
	}
}
