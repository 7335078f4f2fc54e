package jetstream

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
)

// queueState is this process's handle on one queue: its stream, its
// durable consumer and the prefetch buffer fed by the puller.
type queueState struct {
	queueNames
	ready atomic.Bool // stream and consumer exist

	mu      sync.Mutex
	ackWait time.Duration
	started bool // puller running

	// Prefetched messages, oldest first. Guarded by pmu.
	pmu         sync.Mutex
	buf         []inbound
	outstanding int                  // messages the open pull request may still bring
	nakDelayed  map[uint64]time.Time // stream seq -> retry due (local Retry with a delay)
	early       map[uint64]int       // stream seq -> deliveries given back before NotBefore
	inbox       string
	sub         *nats.Subscription

	avail   chan struct{} // signalled when buf gains messages
	room    chan struct{} // signalled when Lease takes messages
	reqDone chan struct{} // signalled when the open pull request ends
	gone    atomic.Bool   // consumer deleted: the puller re-creates it
}

// inbound is a prefetched message and when the server's AckWait timer was
// last (re)started for it.
type inbound struct {
	msg     *nats.Msg
	touched time.Time
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
	q := &queueState{
		queueNames: qn,
		nakDelayed: make(map[uint64]time.Time),
		early:      make(map[uint64]int),
		avail:      make(chan struct{}, 1),
		room:       make(chan struct{}, 1),
		reqDone:    make(chan struct{}, 1),
	}
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
// per process (again after the consumer was deleted).
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
	q.ackWait = cons.CachedInfo().Config.AckWait
	q.ready.Store(true)
	return nil
}

// signal wakes one waiter of ch without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// consuming makes sure the queue exists and its puller runs.
func (q *queueState) consuming(ctx context.Context, b *Backend) error {
	if err := q.ensure(ctx, b); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started {
		return nil
	}
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.isClosing() {
		return queue.ErrClosed
	}
	q.inbox = b.nc.NewInbox()
	sub, err := b.nc.Subscribe(q.inbox, func(m *nats.Msg) { q.onMsg(b, m) })
	if err != nil {
		return fmt.Errorf("jetstream: subscribe %q: %w", q.queue, err)
	}
	_ = sub.SetPendingLimits(-1, -1) // flow is bounded by the pull requests
	q.pmu.Lock()
	q.sub = sub
	q.pmu.Unlock()
	q.started = true
	b.wg.Add(1)
	go q.pull(b)
	return nil
}

// pullExpiry bounds one pull request; a request lost in a disconnect is
// replaced after it.
const pullExpiry = 5 * time.Second

// pull keeps at most one pull request open for the room left in the
// prefetch buffer, until Close. Messages arrive in onMsg.
func (q *queueState) pull(b *Backend) {
	defer b.wg.Done()
	prefetch := b.cfg.Prefetch
	threshold := max(1, prefetch/2)
	subject := b.apiPrefix + "CONSUMER.MSG.NEXT." + q.stream + "." + b.cfg.Consumer
	backoff := 50 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if q.gone.Load() {
			q.ready.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), b.cfg.PublishTimeout)
			go func() {
				select {
				case <-b.closing:
					cancel()
				case <-ctx.Done():
				}
			}()
			err := q.ensure(ctx, b)
			cancel()
			if err != nil {
				b.log.Warn("jetstream: re-create consumer", zap.String("queue", q.queue), zap.Error(err))
				if !sleep(b.closing, backoff) {
					return
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			q.gone.Store(false)
		}
		// Wait for room.
		var n int
		for {
			q.pmu.Lock()
			n = prefetch - len(q.buf)
			q.pmu.Unlock()
			if n >= threshold {
				break
			}
			select {
			case <-q.room:
			case <-b.closing:
				return
			}
		}
		select { // forget a stale end signal
		case <-q.reqDone:
		default:
		}
		q.pmu.Lock()
		q.outstanding = n
		q.pmu.Unlock()
		req := fmt.Appendf(nil, `{"batch":%d,"expires":%d}`, n, int64(pullExpiry))
		if err := b.nc.PublishRequest(subject, q.inbox, req); err != nil {
			if b.isClosing() {
				return
			}
			b.log.Debug("jetstream: pull request", zap.String("queue", q.queue), zap.Error(err))
			if !sleep(b.closing, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		timer.Reset(pullExpiry + time.Second)
		select {
		case <-q.reqDone:
			backoff = 50 * time.Millisecond
		case <-timer.C:
			// Lost (disconnect, server restart): ask again.
		case <-b.closing:
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// sleep waits d or until stop closes; it reports whether d passed.
func sleep(stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}

// onMsg receives what the pull requests bring: messages go to the
// prefetch buffer, status messages end the open request.
func (q *queueState) onMsg(b *Backend, m *nats.Msg) {
	if len(m.Data) == 0 && m.Header != nil {
		if code := m.Header.Get("Status"); code != "" {
			switch code {
			case "100": // idle heartbeat
				return
			case "409":
				desc := m.Header.Get("Description")
				if strings.Contains(strings.ToLower(desc), "deleted") {
					q.gone.Store(true)
				}
				b.log.Debug("jetstream: pull ended", zap.String("queue", q.queue), zap.String("status", code), zap.String("description", desc))
			}
			signal(q.reqDone)
			return
		}
	}
	if m.Reply == "" {
		return
	}
	if b.isClosing() {
		_ = m.Respond(ackNak) // hand it to another replica right away
		return
	}
	q.pmu.Lock()
	q.buf = append(q.buf, inbound{msg: m, touched: time.Now()})
	q.outstanding--
	done := q.outstanding <= 0
	q.pmu.Unlock()
	signal(q.avail)
	if done {
		signal(q.reqDone)
	}
}

// take removes up to max prefetched messages.
func (q *queueState) take(max int) []inbound {
	q.pmu.Lock()
	n := min(max, len(q.buf))
	if n == 0 {
		q.pmu.Unlock()
		return nil
	}
	out := make([]inbound, n)
	copy(out, q.buf)
	rest := copy(q.buf, q.buf[n:])
	clear(q.buf[rest:])
	q.buf = q.buf[:rest]
	left := rest > 0
	q.pmu.Unlock()
	if left {
		signal(q.avail) // another Lease may take the rest
	}
	signal(q.room)
	return out
}

// refresh sends an in-progress ack for prefetched messages that waited
// longer than half their AckWait, so none expires in the buffer.
func (q *queueState) refresh(now time.Time) {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	for i := range q.buf {
		in := &q.buf[i]
		if now.Sub(in.touched) > q.ackWait/2 {
			if in.msg.Respond(ackProgress) == nil {
				in.touched = now
			}
		}
	}
	for seq, due := range q.nakDelayed {
		if !due.After(now) {
			delete(q.nakDelayed, seq)
		}
	}
}

// prefetched reports the buffered messages and the locally known retries
// still waiting out their delay.
func (q *queueState) prefetched(now time.Time) (buffered, delayed int) {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	for _, due := range q.nakDelayed {
		if due.After(now) {
			delayed++
		}
	}
	return len(q.buf), delayed
}

// keepBuffers runs refresh over every queue until Close.
func (b *Backend) keepBuffers() {
	defer b.wg.Done()
	every := max(b.cfg.AckWait/4, 5*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.closing:
			return
		case now := <-t.C:
			b.qmu.Lock()
			qs := make([]*queueState, 0, len(b.queues))
			for _, q := range b.queues {
				qs = append(qs, q)
			}
			b.qmu.Unlock()
			for _, q := range qs {
				if q.ready.Load() {
					q.refresh(now)
				}
			}
		}
	}
}

// stopConsumers stops the pullers and gives prefetched messages back.
func (b *Backend) stopConsumers() {
	b.wmu.Lock() // no puller starts after this
	b.wmu.Unlock()
	b.wg.Wait()
	b.qmu.Lock()
	qs := make([]*queueState, 0, len(b.queues))
	for _, q := range b.queues {
		qs = append(qs, q)
	}
	b.qmu.Unlock()
	for _, q := range qs {
		q.pmu.Lock()
		if q.sub != nil {
			_ = q.sub.Unsubscribe()
		}
		buf := q.buf
		q.buf = nil
		q.pmu.Unlock()
		for _, in := range buf {
			_ = in.msg.Respond(ackNak)
		}
	}
}

// Acknowledgement bodies (the JetStream ack protocol).
var (
	ackAck      = []byte("+ACK")
	ackNak      = []byte("-NAK")
	ackProgress = []byte("+WPI")
)

// Lease waits until a task of queueName is prefetched and returns up to max
// of them. leaseFor longer than the consumer's AckWait is kept alive by
// in-progress acks until it ends; shorter leases last AckWait (the
// delivery's LeaseUntil tells the truth). Prefetched messages are kept
// alive with in-progress acks while they wait in the buffer.
func (b *Backend) Lease(ctx context.Context, queueName string, max int, leaseFor time.Duration) ([]*queue.Delivery, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if max <= 0 {
		max = 1
	}
	q, err := b.queue(queueName)
	if err != nil {
		return nil, err
	}
	if err := q.consuming(ctx, b); err != nil {
		if b.isClosing() {
			return nil, queue.ErrClosed
		}
		return nil, err
	}
	for {
		ins := q.take(max)
		if len(ins) == 0 {
			select {
			case <-q.avail:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-b.closing:
				return nil, queue.ErrClosed
			}
		}
		if b.isClosing() {
			for _, in := range ins {
				_ = in.msg.Respond(ackNak)
			}
			return nil, queue.ErrClosed
		}
		out := make([]*queue.Delivery, 0, len(ins))
		for _, in := range ins {
			if d := b.deliver(q, in, leaseFor); d != nil {
				out = append(out, d)
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
	ackWait := q.ackWait
	if now.Sub(in.touched) >= ackWait {
		return nil // its lease ran out in the buffer; the server redelivers it
	}
	md, err := m.Metadata()
	if err != nil {
		b.log.Warn("jetstream: message without metadata", zap.String("queue", q.queue), zap.Error(err))
		return nil
	}
	t, err := decodeTask(m.Header, m.Data, q.queue)
	if err != nil {
		b.poison(q, m, md, err)
		return nil
	}
	seq := md.Sequence.Stream
	if !t.NotBefore.IsZero() && t.NotBefore.After(now) {
		// A server without schedules, or a schedule that fired early
		// (clock skew between servers): not an attempt.
		if nakWithDelay(m, t.NotBefore.Sub(now)) == nil {
			q.pmu.Lock()
			q.early[seq]++
			q.nakDelayed[seq] = t.NotBefore
			q.pmu.Unlock()
		}
		return nil
	}
	q.pmu.Lock()
	early := q.early[seq]
	delete(q.early, seq)
	q.pmu.Unlock()
	t.Attempt = max(1, int(md.NumDelivered)-early)
	r := &receipt{b: b, q: q, msg: m, seq: seq, attempt: t.Attempt, early: early, ackWait: ackWait, touched: in.touched}
	d := &queue.Delivery{Task: t, Receipt: r}
	r.d = d
	r.mu.Lock()
	r.setLease(now, leaseFor)
	r.mu.Unlock()
	b.track(r)
	return d
}

// nakWithDelay asks for a redelivery after delay.
func nakWithDelay(m *nats.Msg, delay time.Duration) error {
	if delay <= 0 {
		return m.Respond(ackNak)
	}
	return m.Respond(fmt.Appendf(nil, `-NAK {"delay":%d}`, int64(delay)))
}

// receipt is the private settlement handle of one delivery.
type receipt struct {
	b       *Backend
	q       *queueState
	msg     *nats.Msg
	d       *queue.Delivery
	seq     uint64
	attempt int
	early   int // deliveries before NotBefore, not attempts
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
	next := r.touched.Add(r.ackWait / 2).Sub(now)
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
	if err := r.msg.Respond(ackProgress); err != nil {
		r.b.log.Warn("jetstream: keep lease", zap.String("queue", r.q.queue), zap.Error(err))
		return
	}
	r.touched = now
	r.scheduleKeeper(now)
}

// begin checks that r may be settled now and marks it settled. r.mu held.
func (r *receipt) begin() error {
	if r.b.connDone.Load() {
		return queue.ErrClosed
	}
	if r.settled {
		return fmt.Errorf("jetstream: delivery already settled: %w", queue.ErrLeaseLost)
	}
	if time.Now().After(r.leaseEnd) {
		r.settled = true
		r.stopKeeper()
		r.b.untrack(r)
		return fmt.Errorf("jetstream: lease ended at %s: %w", r.leaseEnd.Format(time.RFC3339Nano), queue.ErrLeaseLost)
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
		_, err = b.nc.RequestWithContext(ctx, r.msg.Reply, ackAck)
	} else {
		err = r.msg.Respond(ackAck)
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
	if b.cfg.MaxDeliver > 0 && r.attempt+r.early >= b.cfg.MaxDeliver {
		return b.deadLetterLocked(ctx, r, fmt.Sprintf("retry requested after the last of %d deliveries (max_deliver)", b.cfg.MaxDeliver))
	}
	delay := time.Until(at)
	if err := nakWithDelay(r.msg, delay); err != nil {
		return fmt.Errorf("jetstream: nak task %s: %w", d.Task.ID, err)
	}
	r.q.pmu.Lock()
	if delay > 0 {
		r.q.nakDelayed[r.seq] = at
	}
	if r.early > 0 {
		r.q.early[r.seq] = r.early // the next delivery counts attempts alike
	}
	r.q.pmu.Unlock()
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
	if b.connDone.Load() {
		return queue.ErrClosed
	}
	if r.settled {
		return fmt.Errorf("jetstream: delivery already settled: %w", queue.ErrLeaseLost)
	}
	now := time.Now()
	if now.After(r.leaseEnd) {
		return fmt.Errorf("jetstream: lease ended at %s: %w", r.leaseEnd.Format(time.RFC3339Nano), queue.ErrLeaseLost)
	}
	if err := r.msg.Respond(ackProgress); err != nil {
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
