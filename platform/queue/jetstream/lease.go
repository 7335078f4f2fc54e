package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
)

// queueState is this process's handle on one queue: its stream, its
// durable consumer and the prefetch buffer fed by Consume.
type queueState struct {
	queueNames
	ready atomic.Bool // stream and consumer exist

	mu      sync.Mutex
	cons    jetstream.Consumer
	ackWait time.Duration
	cc      jetstream.ConsumeContext
	buf     chan inbound
}

// inbound is a prefetched message and when it arrived.
type inbound struct {
	msg jetstream.Msg
	at  time.Time
}

// queue returns the state of queue name, creating it (without I/O).
func (b *Backend) queue(name string) (*queueState, error) {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	if q, ok := b.queues[name]; ok {
		return q, nil
	}
	qn, err := b.names.forQueue(name)
	if err != nil {
		return nil, err
	}
	q := &queueState{queueNames: qn}
	b.queues[name] = q
	return q, nil
}

func (b *Backend) streamConfig(q *queueState) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              q.stream,
		Description:       "plba queue " + q.queue,
		Subjects:          []string{q.subject, q.schedPrefix + "*"},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           b.storage(),
		Replicas:          b.cfg.Replicas,
		Duplicates:        b.cfg.DuplicateWindow,
		Discard:           jetstream.DiscardOld,
		AllowMsgSchedules: true,
		AllowRollup:       true,
		Metadata:          map[string]string{"plba_queue": q.queue},
	}
}

func (b *Backend) storage() jetstream.StorageType {
	if b.cfg.Storage == StorageMemory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// ensure creates or updates the queue's stream and durable consumer once
// per process.
func (q *queueState) ensure(ctx context.Context, b *Backend) error {
	if q.ready.Load() {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ready.Load() {
		return nil
	}
	s, err := b.js.CreateOrUpdateStream(ctx, b.streamConfig(q))
	if err != nil {
		return fmt.Errorf("jetstream: create stream %q: %w", q.stream, err)
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       b.cfg.Consumer,
		Description:   "plba workers of queue " + q.queue,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.cfg.AckWait,
		MaxDeliver:    b.cfg.MaxDeliver,
		MaxAckPending: b.cfg.MaxAckPending,
		FilterSubject: q.subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("jetstream: create consumer %q on %q: %w", b.cfg.Consumer, q.stream, err)
	}
	q.cons = cons
	q.ackWait = cons.CachedInfo().Config.AckWait
	q.ready.Store(true)
	return nil
}

// consuming returns the prefetch buffer, starting Consume when needed.
func (q *queueState) consuming(ctx context.Context, b *Backend) (chan inbound, jetstream.ConsumeContext, error) {
	if err := q.ensure(ctx, b); err != nil {
		return nil, nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if b.isClosing() {
		return nil, nil, queue.ErrClosed
	}
	if q.cc != nil {
		select {
		case <-q.cc.Closed():
			// Consume ended on its own (consumer deleted, ...): start over.
			q.cc = nil
			q.ready.Store(false)
		default:
			return q.buf, q.cc, nil
		}
	}
	if !q.ready.Load() {
		q.mu.Unlock()
		err := q.ensure(ctx, b)
		q.mu.Lock()
		if err != nil {
			return nil, nil, err
		}
	}
	if q.buf == nil {
		q.buf = make(chan inbound, b.cfg.Prefetch)
	}
	buf := q.buf
	cc, err := q.cons.Consume(func(m jetstream.Msg) {
		select {
		case buf <- inbound{msg: m, at: time.Now()}:
		case <-b.closing:
			_ = m.Nak() // hand it to another replica right away
		}
	},
		jetstream.PullMaxMessages(b.cfg.Prefetch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				b.log.Warn("jetstream: consume", zap.String("queue", q.queue), zap.Error(err))
			} else {
				b.log.Debug("jetstream: consume", zap.String("queue", q.queue), zap.Error(err))
			}
		}),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: consume %q: %w", q.stream, err)
	}
	q.cc = cc
	return buf, cc, nil
}

// stopConsumers stops every Consume and gives prefetched messages back.
func (b *Backend) stopConsumers() {
	b.qmu.Lock()
	qs := make([]*queueState, 0, len(b.queues))
	for _, q := range b.queues {
		qs = append(qs, q)
	}
	b.qmu.Unlock()
	for _, q := range qs {
		q.mu.Lock()
		cc, buf := q.cc, q.buf
		q.mu.Unlock()
		if cc == nil {
			continue
		}
		cc.Stop()
		select {
		case <-cc.Closed():
		case <-time.After(2 * time.Second):
		}
		for {
			select {
			case in := <-buf:
				_ = in.msg.Nak()
				continue
			default:
			}
			break
		}
	}
}

// Lease waits until a task of queueName is prefetched and returns up to max
// of them. leaseFor longer than the consumer's AckWait is kept alive by
// in-progress acks until it ends; shorter leases last AckWait (the
// delivery's LeaseUntil tells the truth). Messages that waited in the
// prefetch buffer for more than half their AckWait are refreshed with an
// in-progress ack first, and ones whose AckWait has passed are skipped
// (the server redelivers them).
func (b *Backend) Lease(ctx context.Context, queueName string, max int, leaseFor time.Duration) ([]*queue.Delivery, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	if max <= 0 {
		max = 1
	}
	q, err := b.queue(queueName)
	if err != nil {
		return nil, err
	}
	for {
		buf, cc, err := q.consuming(ctx, b)
		if err != nil {
			return nil, err
		}
		var first inbound
		select {
		case first = <-buf:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-b.closing:
			return nil, queue.ErrClosed
		case <-cc.Closed():
			if b.isClosing() {
				return nil, queue.ErrClosed
			}
			continue
		}
		out := make([]*queue.Delivery, 0, min(max, 1+len(buf)))
		if d := b.deliver(q, first, leaseFor); d != nil {
			out = append(out, d)
		}
	more:
		for len(out) < max {
			select {
			case in := <-buf:
				if d := b.deliver(q, in, leaseFor); d != nil {
					out = append(out, d)
				}
			default:
				break more
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
}

// deliver turns a prefetched message into a delivery, or returns nil when
// it must not be handed out.
func (b *Backend) deliver(q *queueState, in inbound, leaseFor time.Duration) *queue.Delivery {
	m := in.msg
	now := time.Now()
	age := now.Sub(in.at)
	ackWait := q.ackWait
	if age >= ackWait {
		return nil // its lease ran out in the buffer; the server redelivers it
	}
	md, err := m.Metadata()
	if err != nil {
		b.log.Warn("jetstream: message without metadata", zap.String("queue", q.queue), zap.Error(err))
		_ = m.Term()
		return nil
	}
	t, err := decodeTask(m.Headers(), m.Data(), q.queue)
	if err != nil {
		b.poison(q, m, md, err)
		return nil
	}
	if !t.NotBefore.IsZero() && t.NotBefore.After(now) {
		// Only when the schedule fired early (clock skew between servers).
		_ = m.NakWithDelay(t.NotBefore.Sub(now))
		return nil
	}
	touched := in.at
	if age > ackWait/2 {
		if err := m.InProgress(); err != nil {
			return nil
		}
		touched = now
	}
	t.Attempt = int(md.NumDelivered)
	r := &receipt{b: b, q: q, msg: m, seq: md.Sequence.Stream, attempt: t.Attempt, ackWait: ackWait, touched: touched}
	d := &queue.Delivery{Task: t, Receipt: r}
	r.d = d
	r.mu.Lock()
	r.setLease(now, leaseFor)
	r.mu.Unlock()
	b.track(r)
	return d
}

// receipt is the private settlement handle of one delivery.
type receipt struct {
	b       *Backend
	q       *queueState
	msg     jetstream.Msg
	d       *queue.Delivery
	seq     uint64
	attempt int
	ackWait time.Duration

	mu       sync.Mutex
	settled  bool
	touched  time.Time // last time the server's AckWait timer restarted
	leaseEnd time.Time // the lease promised to the caller
	keeper   *time.Timer
}

// setLease promises the lease until now+leaseFor (at least AckWait after
// the last touch) and arranges in-progress acks to keep it. r.mu held.
func (r *receipt) setLease(now time.Time, leaseFor time.Duration) {
	end := r.touched.Add(r.ackWait)
	if want := now.Add(leaseFor); want.After(end) {
		end = want
	}
	r.leaseEnd = end
	r.d.LeaseUntil = end
	r.scheduleKeeper(now)
}

// scheduleKeeper arms the timer that refreshes the server's AckWait while
// the promised lease extends beyond it. r.mu held.
func (r *receipt) scheduleKeeper(now time.Time) {
	serverEnd := r.touched.Add(r.ackWait)
	if !r.leaseEnd.After(serverEnd) {
		if r.keeper != nil {
			r.keeper.Stop()
		}
		return
	}
	next := r.touched.Add(r.ackWait * 2 / 3).Sub(now)
	if r.keeper == nil {
		r.keeper = time.AfterFunc(next, r.keep)
	} else {
		r.keeper.Reset(next)
	}
}

func (r *receipt) keep() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.settled || r.b.connDone.Load() {
		return
	}
	now := time.Now()
	if now.After(r.touched.Add(r.ackWait)) {
		return // too late: the server has redelivered it
	}
	if err := r.msg.InProgress(); err != nil {
		r.b.log.Warn("jetstream: keep lease", zap.String("queue", r.q.queue), zap.Error(err))
		return
	}
	r.touched = now
	r.scheduleKeeper(now)
}

// begin checks that r may be settled now and marks it settled. r.mu held.
func (r *receipt) begin() error {
	if r.settled {
		return fmt.Errorf("jetstream: delivery already settled: %w", queue.ErrLeaseLost)
	}
	if time.Now().After(r.leaseEnd) {
		r.settled = true
		r.stopKeeper()
		r.b.untrack(r)
		return fmt.Errorf("jetstream: lease ended at %s: %w", r.leaseEnd.Format(time.RFC3339Nano), queue.ErrLeaseLost)
	}
	if r.b.connDone.Load() {
		return queue.ErrClosed
	}
	return nil
}

func (r *receipt) stopKeeper() {
	if r.keeper != nil {
		r.keeper.Stop()
	}
}

// finish marks r settled. r.mu held.
func (r *receipt) finish() {
	r.settled = true
	r.stopKeeper()
	r.b.untrack(r)
}

func (b *Backend) receiptOf(d *queue.Delivery) (*receipt, error) {
	if d == nil {
		return nil, fmt.Errorf("jetstream: nil delivery: %w", ErrForeignDelivery)
	}
	r, ok := d.Receipt.(*receipt)
	if !ok || r == nil || r.b != b {
		return nil, ErrForeignDelivery
	}
	return r, nil
}

// Ack settles d as done; the work-queue stream deletes the message. With
// Config.AckSync it waits for the server's confirmation.
func (b *Backend) Ack(ctx context.Context, d *queue.Delivery) error {
	r, err := b.receiptOf(d)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin(); err != nil {
		return err
	}
	if b.cfg.AckSync {
		err = r.msg.DoubleAck(ctx)
	} else {
		err = r.msg.Ack()
	}
	if err != nil {
		return fmt.Errorf("jetstream: ack task %s: %w", d.Task.ID, err)
	}
	r.finish()
	return nil
}

// Retry settles d as failed for now with a negative ack delayed until at.
// The next delivery's Attempt (NumDelivered) is one higher. When d was the
// last delivery Config.MaxDeliver allows, the task is dead-lettered
// instead, because the server would not deliver it again.
func (b *Backend) Retry(ctx context.Context, d *queue.Delivery, at time.Time) error {
	r, err := b.receiptOf(d)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin(); err != nil {
		return err
	}
	if b.cfg.MaxDeliver > 0 && r.attempt >= b.cfg.MaxDeliver {
		return b.deadLetterLocked(ctx, r, fmt.Sprintf("retry requested after the last of %d deliveries (max_deliver)", b.cfg.MaxDeliver))
	}
	if delay := time.Until(at); delay > 0 {
		err = r.msg.NakWithDelay(delay)
	} else {
		err = r.msg.Nak()
	}
	if err != nil {
		return fmt.Errorf("jetstream: nak task %s: %w", d.Task.ID, err)
	}
	r.finish()
	return nil
}

// Extend sends an in-progress ack (the server restarts AckWait) and
// promises the lease until now+leaseFor, kept alive with further
// in-progress acks when leaseFor exceeds AckWait. d.LeaseUntil is updated.
func (b *Backend) Extend(ctx context.Context, d *queue.Delivery, leaseFor time.Duration) error {
	r, err := b.receiptOf(d)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.settled {
		return fmt.Errorf("jetstream: delivery already settled: %w", queue.ErrLeaseLost)
	}
	now := time.Now()
	if now.After(r.leaseEnd) {
		return fmt.Errorf("jetstream: lease ended at %s: %w", r.leaseEnd.Format(time.RFC3339Nano), queue.ErrLeaseLost)
	}
	if b.connDone.Load() {
		return queue.ErrClosed
	}
	if err := r.msg.InProgress(); err != nil {
		return fmt.Errorf("jetstream: extend task %s: %w", d.Task.ID, err)
	}
	r.touched = now
	r.setLease(now, leaseFor)
	return nil
}

// track records a handed-out delivery until it is settled.
func (b *Backend) track(r *receipt) {
	b.imu.Lock()
	b.inflight[r] = struct{}{}
	b.imu.Unlock()
}

func (b *Backend) untrack(r *receipt) {
	b.imu.Lock()
	delete(b.inflight, r)
	b.imu.Unlock()
	select {
	case b.settled <- struct{}{}:
	default:
	}
}

// pruneInflight forgets deliveries whose lease has ended and returns how
// many remain.
func (b *Backend) pruneInflight(now time.Time) int {
	b.imu.Lock()
	defer b.imu.Unlock()
	for r := range b.inflight {
		if r.mu.TryLock() {
			if !r.settled && now.After(r.leaseEnd) {
				r.stopKeeper()
				delete(b.inflight, r)
			}
			r.mu.Unlock()
		}
	}
	return len(b.inflight)
}
