package jetstream

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
)

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
