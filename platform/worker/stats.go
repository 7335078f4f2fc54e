package worker

import (
	"sync/atomic"
	"time"

	"github.com/plba/plba/platform/queue"
)

// Stats are the counters of a pool; they are also its lifecycle
// component's details.
type Stats struct {
	Queue string `json:"queue"`
	// Processed counts the deliveries the pool finished with, whatever
	// their outcome (a failed settlement included).
	Processed int64 `json:"processed"`
	// Succeeded counts deliveries whose handler succeeded and that the
	// backend acked.
	Succeeded int64 `json:"succeeded"`
	// Failed counts failed handler runs (errors, panics, timeouts) and
	// deliveries whose settlement panicked or whose worker crashed.
	Failed int64 `json:"failed"`
	// Retried counts deliveries the backend scheduled again.
	Retried int64 `json:"retried"`
	// Dead counts tasks of the queue the backend dead-lettered: by the
	// pool's verdict, on its own when asked to retry or to give a
	// delivery back (queue.ErrDeadLettered), or on its own outside any settlement
	// (queue.DeadWatcher, reported through the Runtime).
	Dead int64 `json:"dead"`
	// Returned counts deliveries the backend took back unsettled (at stop,
	// or taken from the hand-over buffer while paused).
	Returned int64 `json:"returned"`
	// SettleFailed counts, per operation, settlements the backend refused,
	// did not answer in time, or panicked in. Such a delivery is not counted as done:
	// it stays leased until its lease ends (or the backend brings that
	// forward), and the backend delivers it again (a failed ack: the
	// handler runs again; a failed release: as a new attempt), unless it
	// dead-lettered it (a Release answered queue.ErrDeadLettered, counted
	// in Dead as well).
	SettleFailed SettleFailures `json:"settle_failed"`
	// CompletionFailed counts completions (source.Completer) that returned
	// an error after the backend settled the task, and those of outcomes
	// the backend found on its own that the runtime stopped before telling.
	// They are logged and not retried by the pool: the settlement stands.
	CompletionFailed int64 `json:"completion_failed"`
	// Expired counts deliveries skipped because their lease ended (or
	// could not be extended) while they waited for a worker, and those
	// given back unrun (Pause, Stop) whose lease the backend says had
	// ended (queue.ErrLeaseLost): the backend delivers them again, as a
	// new attempt. Neither is a failed settlement.
	Expired int64 `json:"expired"`
	// Panics counts recovered handler panics (also counted in Failed).
	Panics int64 `json:"panics"`
	// WorkerRestarts counts worker goroutines that died outside a
	// handler (or of runtime.Goexit) and were replaced (the delivery they held fails like a
	// handler error: retried, or dead-lettered at its last attempt).
	WorkerRestarts int64 `json:"worker_restarts"`
	// InFlight is the number of deliveries being handled now.
	InFlight int64 `json:"in_flight"`
	// Workers is the number of worker goroutines.
	Workers int `json:"workers"`
	// Paused reports whether the pool stopped taking new work.
	Paused bool `json:"paused"`
	// Override is what an operator changed at run time (nil: nothing).
	Override *queue.PoolOverride `json:"override,omitempty"`
	// LastError is the text of the latest failure.
	LastError string `json:"last_error,omitempty"`
	// LastFinished is when the latest delivery was settled.
	LastFinished time.Time `json:"last_finished,omitzero"`
}

// SettleFailures counts failed settlements by operation.
type SettleFailures struct {
	Ack        int64 `json:"ack"`
	Retry      int64 `json:"retry"`
	DeadLetter int64 `json:"dead_letter"`
	Release    int64 `json:"release"`
}

// Total is the sum over every operation.
func (s SettleFailures) Total() int64 { return s.Ack + s.Retry + s.DeadLetter + s.Release }

// Settlement operations, as counted in SettleFailures and named in the
// metric plba.task.settle_failed (label op).
const (
	OpAck        = "ack"
	OpRetry      = "retry"
	OpDeadLetter = "dead_letter"
	OpRelease    = "release"
)

// counters are a pool's counts, updated with atomics on the task path.
type counters struct {
	processed, succeeded, failed, retried, dead, returned atomic.Int64
	panics, restarts, inFlight, expired, completionFailed atomic.Int64
	ackFailed, retryFailed, deadFailed, releaseFailed     atomic.Int64
	lastErr                                               atomic.Pointer[string]
	lastFinished                                          atomic.Int64 // pool clock when the latest delivery was settled; 0: none
}

// settleFailed returns the counter of op's failures.
func (c *counters) settleFailed(op string) *atomic.Int64 {
	switch op {
	case OpAck:
		return &c.ackFailed
	case OpRetry:
		return &c.retryFailed
	case OpDeadLetter:
		return &c.deadFailed
	default:
		return &c.releaseFailed
	}
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	paused := p.paused
	p.mu.Unlock()
	c := &p.n
	s := Stats{
		Queue:     p.queue,
		Processed: c.processed.Load(),
		Succeeded: c.succeeded.Load(),
		Failed:    c.failed.Load(),
		Retried:   c.retried.Load(),
		Dead:      c.dead.Load(),
		Returned:  c.returned.Load(),
		SettleFailed: SettleFailures{
			Ack: c.ackFailed.Load(), Retry: c.retryFailed.Load(),
			DeadLetter: c.deadFailed.Load(), Release: c.releaseFailed.Load(),
		},
		CompletionFailed: c.completionFailed.Load(),
		Expired:          c.expired.Load(),
		Panics:           c.panics.Load(),
		WorkerRestarts:   c.restarts.Load(),
		InFlight:         c.inFlight.Load(),
		Workers:          int(p.workersN.Load()),
		Paused:           paused,
		Override:         p.override.Load(),
	}
	if e := c.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	if n := c.lastFinished.Load(); n != 0 {
		s.LastFinished = p.epoch.Add(time.Duration(n))
	}
	return s
}

// setLastError records err's text (see errorText) as Stats.LastError.
func (p *Pool) setLastError(err error) {
	msg, _ := errorText(err)
	p.n.lastErr.Store(&msg)
}
