package jetstream

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// deadScanBatch is how many headers one fetch of a dead-letter scan asks
// for.
const deadScanBatch = 256

// deadScanWait bounds one fetch of a dead-letter scan: the messages are
// stored, so they come at once; the wait only guards against a server
// that stops answering.
const deadScanWait = 5 * time.Second

// headerMsgSize is the header a headers-only consumer puts in place of
// the payload: its size in bytes.
const headerMsgSize = "Nats-Msg-Size"

// QueryDead returns one page of the queue's dead letters matching qr,
// oldest first. It reads the dead-letter stream through an ephemeral
// headers-only consumer, so a page costs no payload bytes (the size comes
// from the server's Nats-Msg-Size header); with qr.WithPayload each
// listed dead letter's message is read in full. The cursor is the stream
// sequence of the page's last dead letter.
func (b *Backend) QueryDead(ctx context.Context, queueName string, qr queue.DeadQuery) (queue.DeadPage, error) {
	page := queue.DeadPage{Items: []queue.DeadLetter{}}
	if err := b.usable(); err != nil {
		return page, err
	}
	qn, err := b.names.forQueue(queueName)
	if err != nil {
		return page, err
	}
	start := uint64(1)
	if qr.Cursor != "" {
		n, err := strconv.ParseUint(qr.Cursor, 10, 64)
		if err != nil || n == 0 {
			return page, fmt.Errorf("jetstream: cursor %q: %w", qr.Cursor, queue.ErrBadCursor)
		}
		start = n + 1
	}
	limit := qr.PageLimit()
	match := qr.Matcher() // the ids as a set: one lookup per dead letter
	var seqs []uint64     // of page.Items
	full := false
	err = b.scanDeadHeaders(ctx, qn, start, func(seq uint64, d queue.DeadLetter) bool {
		if !match(d) {
			return true
		}
		if full { // one more match exists: there is a next page
			page.Next = strconv.FormatUint(seqs[len(seqs)-1], 10)
			return false
		}
		page.Items = append(page.Items, d)
		seqs = append(seqs, seq)
		full = len(page.Items) == limit
		return true
	})
	if err != nil {
		return queue.DeadPage{Items: []queue.DeadLetter{}}, err
	}
	if qr.WithPayload {
		for i, seq := range seqs {
			d, err := b.readDead(ctx, qn, seq)
			if err != nil {
				return queue.DeadPage{Items: []queue.DeadLetter{}}, err
			}
			page.Items[i] = d
		}
	}
	return page, nil
}

// GetDead returns the dead letter of the queue whose task has id, with
// its payload: a headers-only scan finds its sequence, then the message
// is read in full.
func (b *Backend) GetDead(ctx context.Context, queueName, id string) (queue.DeadLetter, error) {
	if err := b.usable(); err != nil {
		return queue.DeadLetter{}, err
	}
	qn, err := b.names.forQueue(queueName)
	if err != nil {
		return queue.DeadLetter{}, err
	}
	var found uint64
	if err := b.scanDeadHeaders(ctx, qn, 1, func(seq uint64, d queue.DeadLetter) bool {
		if d.Task.ID == id {
			found = seq
			return false
		}
		return true
	}); err != nil {
		return queue.DeadLetter{}, err
	}
	if found == 0 {
		return queue.DeadLetter{}, fmt.Errorf("jetstream: dead letter %q of %q: %w", id, queueName, queue.ErrNotFound)
	}
	d, err := b.readDead(ctx, qn, found)
	if isMsgNotFound(err) {
		return queue.DeadLetter{}, fmt.Errorf("jetstream: dead letter %q of %q: %w", id, queueName, queue.ErrNotFound)
	}
	return d, err
}

// readDead reads the dead letter stored at seq in full.
func (b *Backend) readDead(ctx context.Context, qn queueNames, seq uint64) (queue.DeadLetter, error) {
	s, err := b.lookupDead(ctx)
	if err != nil {
		return queue.DeadLetter{}, err
	}
	raw, err := s.GetMsg(ctx, seq)
	if err != nil {
		return queue.DeadLetter{}, fmt.Errorf("jetstream: read dead letter %d of %q: %w", seq, qn.queue, err)
	}
	d := decodeDeadOrRaw(raw.Header, raw.Data, qn.queue, seq, raw.Time)
	d.PayloadSize = len(raw.Data)
	return d, nil
}

// decodeDeadOrRaw decodes a stored dead letter, or shows a message that is
// not one as a task "dead-seq-<n>" of kind "?" with the decoding error as
// its reason (as scanDead does).
func decodeDeadOrRaw(h map[string][]string, data []byte, queueName string, seq uint64, at time.Time) queue.DeadLetter {
	dl, err := decodeDead(h, data, queueName)
	if err != nil {
		return deadStandIn(queueName, seq, data, at, err)
	}
	return dl
}

// deadStandIn shows the message at seq of the dead-letter stream, which
// does not decode as a dead letter (err), as a task "dead-seq-<n>" of
// kind "?" with the decoding error as its reason: not "seq-<n>", the id a
// message of the work stream that is not a task is dead-lettered with
// (foreignStandIn), whose sequence may be the same.
func deadStandIn(queueName string, seq uint64, data []byte, at time.Time, err error) queue.DeadLetter {
	return queue.DeadLetter{
		Task:   &task.Task{ID: "dead-seq-" + strconv.FormatUint(seq, 10), Kind: "?", Queue: queueName, Payload: data},
		Reason: err.Error(), At: at,
	}
}

// scanDeadHeaders calls fn with every dead letter of qn from stream
// sequence start on, oldest first, without payloads (PayloadSize set),
// until fn returns false (see scanDeadHeadersFrom).
func (b *Backend) scanDeadHeaders(ctx context.Context, qn queueNames, start uint64, fn func(seq uint64, d queue.DeadLetter) bool) error {
	return b.scanDeadHeadersFrom(ctx, qn, deadScanFrom{seq: start}, func(seq uint64, _ nats.Header, d queue.DeadLetter) bool {
		return fn(seq, d)
	})
}

// deadScanFrom is where a dead-letter scan begins: at the stream sequence
// seq, or, when since is set, at the first dead letter stored at or after
// since (the server's clock).
type deadScanFrom struct {
	seq   uint64
	since time.Time
}

// scanDeadHeadersFrom calls fn with every dead letter of qn from from on,
// oldest first, with its stored headers and without payloads
// (PayloadSize set), until fn returns false. It reads through an
// ephemeral headers-only consumer filtered to the queue's dead-letter
// subject, deleted when the scan ends (and removed by the server after a
// minute of inactivity if the delete fails).
func (b *Backend) scanDeadHeadersFrom(ctx context.Context, qn queueNames, from deadScanFrom, fn func(seq uint64, h nats.Header, d queue.DeadLetter) bool) error {
	s, err := b.lookupDead(ctx)
	if err != nil {
		return err
	}
	cc := jetstream.ConsumerConfig{
		FilterSubject:     qn.deadSubject,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from.seq,
		AckPolicy:         jetstream.AckNonePolicy,
		HeadersOnly:       true,
		MemoryStorage:     true,
		InactiveThreshold: time.Minute,
		Replicas:          1,
	}
	if !from.since.IsZero() {
		cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, &from.since
	}
	cons, err := s.CreateConsumer(ctx, cc)
	if err != nil {
		return fmt.Errorf("jetstream: read dead letters of %q: %w", qn.queue, err)
	}
	name := cons.CachedInfo().Name
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.PublishTimeout)
		defer cancel()
		_ = s.DeleteConsumer(dctx, name)
	}()
	pending := cons.CachedInfo().NumPending
	for pending > 0 {
		batch, err := cons.Fetch(int(min(pending, deadScanBatch)), jetstream.FetchMaxWait(deadScanWait))
		if err != nil {
			return fmt.Errorf("jetstream: read dead letters of %q: %w", qn.queue, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("jetstream: read dead letters of %q: %w", qn.queue, err)
			}
			pending = md.NumPending
			h := m.Headers()
			d := decodeDeadOrRaw(h, nil, qn.queue, md.Sequence.Stream, md.Timestamp)
			d.Task.Payload = nil
			if n, err := strconv.Atoi(h.Get(headerMsgSize)); err == nil {
				d.PayloadSize = n
			}
			if !fn(md.Sequence.Stream, h, d) {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("jetstream: read dead letters of %q: %w", qn.queue, err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("jetstream: read dead letters of %q: %w", qn.queue, err)
		}
		if got == 0 {
			return fmt.Errorf("jetstream: read dead letters of %q: no message within %s with %d pending", qn.queue, deadScanWait, pending)
		}
	}
	return nil
}

// deadMsg is one stored dead letter.
type deadMsg struct {
	seq uint64
	dl  queue.DeadLetter
	raw *jetstream.RawStreamMsg
	// bad is why the message does not decode as a dead letter (dl then
	// shows it as decodeDeadOrRaw does), or nil.
	bad error
}

// scanDead calls fn for every dead letter of q, oldest first, until fn
// returns false.
func (b *Backend) scanDead(ctx context.Context, q queueNames, fn func(deadMsg) bool) error {
	s, err := b.lookupDead(ctx)
	if err != nil {
		return err
	}
	for seq := uint64(1); ; {
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(q.deadSubject))
		if isMsgNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("jetstream: read dead letters of %q: %w", q.queue, err)
		}
		seq = raw.Sequence + 1
		dl, bad := decodeDead(raw.Header, raw.Data, q.queue)
		if bad != nil {
			dl = deadStandIn(q.queue, raw.Sequence, raw.Data, raw.Time, bad)
		}
		if !fn(deadMsg{seq: raw.Sequence, dl: dl, raw: raw, bad: bad}) {
			return nil
		}
	}
}

// ListDead returns up to limit dead letters of queueName, oldest first.
func (b *Backend) ListDead(ctx context.Context, queueName string, limit int) ([]queue.DeadLetter, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	qn, err := b.names.forQueue(queueName)
	if err != nil {
		return nil, err
	}
	var out []queue.DeadLetter
	err = b.scanDead(ctx, qn, func(m deadMsg) bool {
		out = append(out, m.dl)
		return limit <= 0 || len(out) < limit
	})
	return out, err
}
