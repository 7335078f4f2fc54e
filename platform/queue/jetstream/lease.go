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
	r := &receipt{b: b, q: q, msg: m, seq: seq, attempt: t.Attempt, early: early, keyed: keyedMsg(m.Header), ackWait: ackWait, touched: in.touched}
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
