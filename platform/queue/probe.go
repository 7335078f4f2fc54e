package queue

import "context"

// Prober is an optional interface of a backend that can tell whether a
// Lease of a queue reaches the queue now, also while the queue is empty:
// a Lease then blocks, and a Lease that blocks says nothing (it blocks as
// well on a backend whose requests wait out a reconnect). A worker pool
// probes the backend while its Lease waits: one whose Lease failed, so
// that it shows running again once it recovered though no task came, and
// stays degraded while its backend is still unreachable; a healthy one,
// so that it shows degraded once its probes failed for its
// UnreachableAfter (a server gone away while the pool waited for work).
// memory and JetStream have it.
type Prober interface {
	// Probe returns nil when the backend reached the queue's delivery
	// path just now (memory: the backend is open; JetStream: the queue is
	// set up and the server answered for its durable consumer), and
	// otherwise an error saying what it could not reach. A Probe whose
	// ctx ends before it has that answer fails: the end of ctx never
	// stands for an empty queue. Probe sets nothing up; a backend that
	// sets a queue up on its first Lease fails Probe until then.
	Probe(ctx context.Context, queue string) error
}
