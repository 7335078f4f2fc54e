package queue

import "context"

// Prober is an optional interface of a backend that can tell whether a
// Lease of a queue reaches the queue now, also while the queue is empty:
// a Lease then blocks, and a Lease that blocks says nothing (it blocks as
// well on a backend whose requests wait out a reconnect). A worker pool
// whose Lease failed probes the backend while its next Lease waits, so
// that a pool that recovered shows running again though no task came,
// and one whose backend is still unreachable stays degraded. memory and
// JetStream have it.
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
