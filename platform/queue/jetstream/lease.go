package jetstream

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
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
	hasEarly    atomic.Bool          // early is not empty
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
	sc := jetstream.StreamConfig{
		Name:              q.stream,
		Description:       "plba queue " + q.queue,
		Subjects:          []string{q.subject, q.schedPrefix + "*"},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           b.storage(),
		Replicas:          b.cfg.Replicas,
		Duplicates:        b.cfg.DuplicateWindow,
		Discard:           jetstream.DiscardOld, // inert: no limit to discard by
		AllowMsgSchedules: true,
		AllowRollup:       true,
		Metadata:          map[string]string{"plba_queue": q.queue},
	}
	if b.limited() {
		// A full stream refuses new tasks, never drops queued ones. The
		// server cannot schedule messages in such a stream, so NotBefore
		// tasks wait as delayed negative acks (see Enqueue).
		sc.MaxMsgs = max(b.cfg.MaxMsgs, -1)
		sc.MaxBytes = max(b.cfg.MaxBytes, -1)
		sc.Discard = jetstream.DiscardNew
		sc.AllowMsgSchedules = false
	}
	return sc
}

// limited reports whether work streams have a max_msgs or max_bytes.
func (b *Backend) limited() bool { return b.cfg.MaxMsgs > 0 || b.cfg.MaxBytes > 0 }

// scheduling reports whether NotBefore tasks are stored as message
// schedules.
func (b *Backend) scheduling() bool { return b.schedules && !b.limited() }

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
	s, err := createOrUpdateStream(ctx, b.js, b.streamConfig(q))
	if err != nil && b.limited() && strings.Contains(err.Error(), "schedules can not be disabled") {
		return fmt.Errorf("jetstream: stream %q was created without max_msgs/max_bytes and stores message schedules, which a bounded stream cannot: "+
			"drain the queue and delete the stream to bound it, or unset queue.jetstream.max_msgs and max_bytes: %w", q.stream, err)
	}
	if err != nil {
		return fmt.Errorf("jetstream: create stream %q: %w", q.stream, err)
	}
	if err := b.captureAdvisories(ctx, q.stream); err != nil {
		return err
	}
	cons, err := createOrUpdateConsumer(ctx, s, jetstream.ConsumerConfig{
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
	if _, err := b.dropAcked(ctx, q, s, cons); err != nil {
		return err
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
	if err := b.startAdvisories(); err != nil {
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

// keepLeases keeps the leases of handed-out deliveries that were promised
// beyond the server's AckWait: every quarter AckWait it sends an
// in-progress ack for each one half of whose AckWait has passed, so the
// server's timer never runs out while the promise holds (one goroutine
// for all deliveries instead of a timer each), and forgets deliveries
// whose lease ran out unsettled. It runs until leaseStop closes, after
// Close waited for the deliveries in flight.
func (b *Backend) keepLeases() {
	defer b.lwg.Done()
	every := max(b.cfg.AckWait/4, 5*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	var rs []*receipt
	for {
		select {
		case <-b.leaseStop:
			return
		case now := <-t.C:
			b.imu.Lock()
			rs = rs[:0]
			for r := range b.inflight {
				rs = append(rs, r)
			}
			b.imu.Unlock()
			n := 0
			for _, r := range rs {
				if r.keep(now) {
					rs[n] = r
					n++
				}
			}
			if n > 0 {
				b.imu.Lock()
				for _, r := range rs[:n] {
					delete(b.inflight, r)
				}
				b.imu.Unlock()
			}
			clear(rs)
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
	delivered, seq, ok := ackInfo(m.Reply)
	if !ok {
		b.log.Warn("jetstream: message without metadata", zap.String("queue", q.queue), zap.String("reply", m.Reply))
		return nil
	}
	t, err := decodeTask(m.Header, m.Data, q.queue)
	if err != nil {
		md, merr := m.Metadata()
		if merr != nil {
			b.log.Warn("jetstream: message without metadata", zap.String("queue", q.queue), zap.Error(merr))
			return nil
		}
		b.poison(q, m, md, err)
		return nil
	}
	if !t.NotBefore.IsZero() && t.NotBefore.After(now) {
		// A server without schedules, or a schedule that fired early
		// (clock skew between servers): not an attempt.
		if nakWithDelay(m, t.NotBefore.Sub(now)) == nil {
			q.pmu.Lock()
			q.early[seq]++
			q.hasEarly.Store(true)
			q.nakDelayed[seq] = t.NotBefore
			q.pmu.Unlock()
		}
		return nil
	}
	early := 0
	if q.hasEarly.Load() {
		q.pmu.Lock()
		early = q.early[seq]
		delete(q.early, seq)
		q.hasEarly.Store(len(q.early) > 0)
		q.pmu.Unlock()
	}
	t.Attempt = max(1, t.Attempt+int(delivered)-early) // t.Attempt: attempts used before a Release
	r := &receipt{b: b, q: q, msg: m, seq: seq, attempt: t.Attempt, early: early, ackWait: ackWait, touched: in.touched}
	r.del = queue.Delivery{Task: t, Receipt: r}
	d := &r.del
	r.d = d
	r.setLease(now, leaseFor) // r is not shared yet
	b.track(r)
	return d
}

// ackInfo reads the delivery count and the stream sequence from a
// JetStream ack subject ($JS.ACK.<stream>.<consumer>.<delivered>.<seq>...
// or, with a domain and account hash, $JS.ACK.<domain>.<hash>.<stream>...)
// without allocating.
func ackInfo(reply string) (delivered, seq uint64, ok bool) {
	const prefix = "$JS.ACK."
	if !strings.HasPrefix(reply, prefix) {
		return 0, 0, false
	}
	tokens := strings.Count(reply, ".") + 1
	var at int // index of the delivered token
	switch {
	case tokens == 9:
		at = 4
	case tokens >= 11:
		at = 6
	default:
		return 0, 0, false
	}
	rest := reply
	for range at {
		_, rest, _ = strings.Cut(rest, ".")
	}
	dTok, rest, _ := strings.Cut(rest, ".")
	sTok, _, _ := strings.Cut(rest, ".")
	delivered, ok1 := parseUint(dTok)
	seq, ok2 := parseUint(sTok)
	return delivered, seq, ok1 && ok2 && seq > 0
}

// parseUint parses a decimal token.
func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// nakWithDelay asks for a redelivery after delay.
func nakWithDelay(m *nats.Msg, delay time.Duration) error {
	if delay <= 0 {
		return m.Respond(ackNak)
	}
	return m.Respond(fmt.Appendf(nil, `-NAK {"delay":%d}`, int64(delay)))
}

// receipt is the private settlement handle of one delivery. The delivery
// itself lives in it (one allocation for both).
type receipt struct {
	b       *Backend
	q       *queueState
	msg     *nats.Msg
	d       *queue.Delivery // &del
	del     queue.Delivery
	seq     uint64
	attempt int
	early   int // deliveries before NotBefore, not attempts
	ackWait time.Duration

	mu       sync.Mutex
	settled  bool
	touched  time.Time // last time the server's AckWait timer restarted
	leaseEnd time.Time // the lease promised to the caller
}

// setLease promises the lease until now+leaseFor (at least AckWait after
// the last touch). When that is beyond the server's AckWait, the lease
// keeper (keepLeases) sends in-progress acks to keep it. r.mu held.
func (r *receipt) setLease(now time.Time, leaseFor time.Duration) {
	end := r.touched.Add(r.ackWait)
	if want := now.Add(leaseFor); want.After(end) {
		end = want
	}
	r.leaseEnd = end
	r.d.LeaseUntil = end
}

// keep sends an in-progress ack when the promised lease extends beyond
// the server's AckWait and half of that has passed since the last touch.
// It reports whether r can be forgotten: its lease and the server's
// AckWait have both ended without a settlement (the server has
// redelivered the message; a handler that never settles, or a delivery
// the pool skipped, must not stay tracked with its message forever).
//
// A receipt whose lock is held is being settled (settlements hold it
// across their network calls, a publish for Release or a dead letter):
// it is skipped until the next round rather than waited for, so that one
// slow settlement cannot hold up the renewal of every other lease.
func (r *receipt) keep(now time.Time) (forget bool) {
	if !r.mu.TryLock() {
		return false
	}
	defer r.mu.Unlock()
	if r.settled || r.b.connDone.Load() {
		return false
	}
	serverEnd := r.touched.Add(r.ackWait)
	if now.After(serverEnd) {
		// Too late: the server has redelivered it.
		return now.After(r.leaseEnd)
	}
	if !r.leaseEnd.After(serverEnd) || now.Sub(r.touched) < r.ackWait/2 {
		return false
	}
	if err := r.msg.Respond(ackProgress); err != nil {
		r.b.log.Warn("jetstream: keep lease", zap.String("queue", r.q.queue), zap.Error(err))
		return false
	}
	r.touched = now
	return false
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
		r.b.untrack(r)
		return fmt.Errorf("jetstream: lease ended at %s: %w", r.leaseEnd.Format(time.RFC3339Nano), queue.ErrLeaseLost)
	}
	return nil
}

// finish marks r settled. r.mu held.
func (r *receipt) finish() {
	r.settled = true
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

// Ack settles d as done: it records the task's key as finished (done.go),
// then acknowledges the message, which the work-queue stream deletes. With
// Config.AckSync it waits for the server to store the record and to
// confirm the ack. Without (the default), it publishes the record and
// returns; the ack goes out when the server has stored the record. A
// record the server refuses or a connection lost before then leaves the
// task unacked: it is delivered again after AckWait, as a lost ack would
// be.
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
	if !b.cfg.AckSync {
		if err := b.markDoneThenAck(ctx, r); err != nil {
			return err
		}
		r.finish()
		return nil
	}
	if err := b.markDone(ctx, r.q, d.Task.Key, task.Succeeded, ""); err != nil {
		return err
	}
	if err := b.ack(ctx, r); err != nil {
		return fmt.Errorf("jetstream: ack task %s: %w", d.Task.ID, err)
	}
	r.finish()
	return nil
}

// ack acknowledges r's message. With Config.AckSync it waits for the
// server's confirmation, at most for AckWait when ctx has no deadline
// (after that the server redelivers the message anyway; waiting longer
// would only hold the caller).
func (b *Backend) ack(ctx context.Context, r *receipt) error {
	if !b.cfg.AckSync {
		return r.msg.Respond(ackAck)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, max(r.ackWait, time.Second))
		defer cancel()
	}
	_, err := b.nc.RequestWithContext(ctx, r.msg.Reply, ackAck)
	return err
}

// Release gives d back to its queue without counting this delivery as an
// attempt (worker.Releaser): the pool calls it for deliveries it leased but
// never ran, or had to abandon, when it pauses or stops. JetStream counts
// every delivery of a message, and a negative ack would bring the task
// closer to its last attempt for work that never happened; so the task is
// published again as a new message (same id, key and headers; a Nats-Msg-Id
// of its own, so that the duplicate window does not drop it; the attempts
// it had used in HeaderAttempts) and only then is the original
// acknowledged. A crash in between leaves both: the task is delivered
// twice, never lost. If the publish fails, Release falls back to a
// negative ack (the delivery then counts).
func (b *Backend) Release(ctx context.Context, d *queue.Delivery) error {
	r, err := b.receiptOf(d)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin(); err != nil {
		return err
	}
	t := d.Task
	msg := encodeTask(t, r.q.subject, t.Key+"-release-"+strconv.FormatUint(r.seq, 10))
	if used := r.attempt - 1; used > 0 {
		msg.Header.Set(HeaderAttempts, strconv.Itoa(used))
	}
	// The copy's Nats-Msg-Id is not the key, so after a restart the
	// server would not refuse the key while the copy is queued: record
	// it with the finished keys first (done.go). A crash in between
	// leaves the original queued, which is what the record says.
	perr := b.markDone(ctx, r.q, t.Key, task.Returned, "")
	if perr == nil {
		_, perr = b.js.PublishMsg(ctx, msg)
	}
	if perr != nil {
		if err := nakWithDelay(r.msg, 0); err != nil {
			return fmt.Errorf("jetstream: release task %s: publish: %w; nak: %w", t.ID, perr, err)
		}
		r.finish()
		b.log.Warn("jetstream: release fell back to a negative ack (the delivery counts)", zap.String("task", t.ID), zap.Error(perr))
		return nil
	}
	if err := b.ack(ctx, r); err != nil {
		// The copy is stored; the original will be redelivered after
		// AckWait: a duplicate, not a loss.
		return fmt.Errorf("jetstream: release task %s: ack original: %w", t.ID, err)
	}
	r.finish()
	return nil
}

// Retry settles d as failed for now with a negative ack delayed until at.
// The next delivery's Attempt (NumDelivered) is one higher. When d was the
// last delivery Config.MaxDeliver allows, the task is dead-lettered
// instead, because the server would not deliver it again, and Retry
// returns queue.ErrDeadLettered: the settlement happened, as a dead
// letter.
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
		if err := b.deadLetterLocked(ctx, r, fmt.Sprintf("retry requested after the last of %d deliveries (max_deliver)", b.cfg.MaxDeliver)); err != nil {
			return err
		}
		return fmt.Errorf("jetstream: retry task %s on its last delivery (max_deliver %d): %w", d.Task.ID, b.cfg.MaxDeliver, queue.ErrDeadLettered)
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
		r.q.hasEarly.Store(true)
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
				delete(b.inflight, r)
			}
			r.mu.Unlock()
		}
	}
	return len(b.inflight)
}
