package jetstream

import (
	"context"
	"fmt"
)

// Probe reports whether a Lease of queueName reaches the queue now
// (queue.Prober): nil once the queue is set up, its puller runs and the
// server answered a request for its durable consumer within ctx. While
// the connection is down (reconnecting) Probe fails at once, saying so:
// a Lease waits for the reconnect meanwhile, and a pool whose server is
// unreachable must not pass for idle. A server that does not answer on a
// connection that looks up (a partition) fails it when ctx ends. Probe
// sets nothing up (Lease, Declare and the puller do).
func (b *Backend) Probe(ctx context.Context, queueName string) error {
	if err := b.usable(); err != nil {
		return err
	}
	q, err := b.queue(queueName)
	if err != nil {
		return err
	}
	if !b.nc.IsConnected() {
		return fmt.Errorf("jetstream: queue %q: %w: connection %s", q.queue, ErrUnreachable, b.nc.Status())
	}
	if !q.ready.Load() || q.gone.Load() {
		return fmt.Errorf("jetstream: queue %q: %w: stream or consumer not set up", q.queue, ErrUnreachable)
	}
	q.mu.Lock()
	started, cons := q.started, q.cons
	q.mu.Unlock()
	if !started {
		return fmt.Errorf("jetstream: queue %q: %w: not consumed yet", q.queue, ErrUnreachable)
	}
	if _, err := cons.Info(ctx); err != nil {
		return fmt.Errorf("jetstream: queue %q: %w: consumer %q: %w", q.queue, ErrUnreachable, b.cfg.Consumer, err)
	}
	return nil
}
