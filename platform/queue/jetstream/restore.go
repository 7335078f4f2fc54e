package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/internal/sleep"
	"github.com/plba/plba/platform/task"
)

// A server that lost its store while this process keeps running (an
// external server restarted without its volume, an operator removing
// streams) no longer has the backend's own streams, made once at Start:
// without <prefix>_DONE every finished-key record, and so every ack of a
// keyed task, fails (the task runs again after it was reported done);
// without <prefix>_DEAD no dead letter can be stored; without the
// advisory stream and its consumer exhausted tasks stay in their work
// stream, never delivered, never dead-lettered. The backend sets them up
// again: after every reconnect (the server may be a new one) and when a
// publish to one of them, a finished-key lookup or a read of the dead
// letters (lookupDead, lastDone) finds no stream. One
// goroutine (keepStores, stopped by Close) does it, one round at a time;
// callers that found a stream missing wait for the next round and try
// their publish once more (records and dead letters are idempotent: one
// message per subject, Nats-Msg-Id).

// restorer is the state of keepStores.
type restorer struct {
	kick chan struct{} // signalled when a round is asked for

	mu      sync.Mutex
	asked   uint64        // rounds asked for
	done    uint64        // the asked count the last finished round served
	err     error         // that round's error
	round   chan struct{} // closed when a round ends, then replaced
	records []recordRetry // finished-key records to publish again after the round
}

// recordRetry is a finished-key record whose async publish found no
// stream, and the ack that waits for it (see markDoneThenAck).
type recordRetry struct {
	m    *nats.Msg
	slot pubSlot
}

func newRestorer() restorer {
	return restorer{kick: make(chan struct{}, 1), round: make(chan struct{})}
}

// storeGone reports whether err says that no stream answered: a publish
// without a stream for its subject, a direct get or an API call on a
// stream that does not exist.
func storeGone(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, nats.ErrNoResponders)
}

// askRestore asks keepStores for a round that starts after this call,
// and returns its number; it does not block.
func (b *Backend) askRestore() uint64 {
	r := &b.stores
	r.mu.Lock()
	r.asked++
	n := r.asked
	r.mu.Unlock()
	signal(r.kick)
	return n
}

// awaitRestore asks for a round and waits for it to end (or ctx, or
// Close); it returns the round's error.
func (b *Backend) awaitRestore(ctx context.Context) error {
	n := b.askRestore()
	r := &b.stores
	for {
		r.mu.Lock()
		done, err, round := r.done, r.err, r.round
		r.mu.Unlock()
		if done >= n {
			return err
		}
		select {
		case <-round:
		case <-ctx.Done():
			return fmt.Errorf("jetstream: waiting for the streams to be set up again: %w", ctx.Err())
		case <-b.closing:
			return fmt.Errorf("jetstream: waiting for the streams to be set up again: backend closing")
		}
	}
}

// retryRecord hands a finished-key record whose publish found no stream
// to keepStores, which publishes it again after its next round and then
// acks the task (ackAfterRecord). It runs in nats.go's async publish
// error callback and does not block.
func (b *Backend) retryRecord(m *nats.Msg, s pubSlot) {
	r := &b.stores
	r.mu.Lock()
	r.records = append(r.records, recordRetry{m: m, slot: s})
	r.mu.Unlock()
	b.askRestore()
}

// keepStores runs the rounds asked for until Close. A round that failed
// while connected is tried again with back-off (a reconnect asks anew).
func (b *Backend) keepStores() {
	defer b.wg.Done()
	r := &b.stores
	backoff := time.Second
	for {
		select {
		case <-r.kick:
		case <-b.pullCtx.Done():
			return
		}
		r.mu.Lock()
		target := r.asked
		r.mu.Unlock()
		err := b.restoreStores(b.pullCtx)
		r.mu.Lock()
		r.done, r.err = target, err
		close(r.round)
		r.round = make(chan struct{})
		records := r.records
		r.records = nil
		r.mu.Unlock()
		b.publishRecordsAgain(records)
		if err == nil {
			backoff = time.Second
			continue
		}
		if b.pullCtx.Err() != nil {
			return
		}
		b.log.Warn("jetstream: set streams up again (tried again later)", zap.Error(err))
		if b.nc.IsConnected() {
			if !sleep.For(b.closing, backoff) {
				return
			}
			backoff = min(2*backoff, 30*time.Second)
			b.askRestore()
		}
	}
}

// publishRecordsAgain publishes each record once more, synchronously, and
// acks its task when the server stored it; a record refused again leaves
// its task unacked (delivered again after its AckWait).
func (b *Backend) publishRecordsAgain(records []recordRetry) {
	for _, rr := range records {
		ctx, cancel := context.WithTimeout(b.pullCtx, b.cfg.PublishTimeout)
		// The claim built again: a late one reads the marker again.
		m, err := b.claimMsg(ctx, rr.slot.ack, task.Succeeded, "")
		var ack *jetstream.PubAck
		if err == nil {
			ack, err = b.js.PublishMsg(ctx, m)
		}
		cancel()
		if err = claimErr(ack, err); err != nil && !errors.Is(err, errClaimLost) {
			err = fmt.Errorf("publish again after setting the streams up: %w", err)
		}
		b.ackAfterRecord(rr.slot.ack, rr.slot.id, err)
	}
}

// restoreStores sets up again what is missing on the server: the
// dead-letter, finished-key and advisory streams, the advisory consumer
// (and the reading of it), and the work streams and consumers of the
// queues this process has set up. It logs at Warn what it created.
func (b *Backend) restoreStores(ctx context.Context) error {
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 2*b.cfg.PublishTimeout) }
	var made []string
	for _, cfg := range []jetstream.StreamConfig{b.deadStreamConfig(), b.doneStreamConfig()} {
		sctx, cancel := step()
		created, err := b.restoreStream(sctx, cfg)
		cancel()
		if err != nil {
			return err
		}
		if created {
			made = append(made, "stream "+cfg.Name)
		}
	}
	sctx, cancel := step()
	advStream, advCons, err := b.restoreAdvisories(sctx)
	cancel()
	if err != nil {
		return err
	}
	if advStream {
		made = append(made, "stream "+b.names.advisoryStream())
	}
	if advCons {
		made = append(made, "consumer "+b.cfg.Consumer+" of "+b.names.advisoryStream())
	}
	var errs []error // of queues: the others are set up all the same
	for _, q := range b.knownQueues() {
		if !q.setUp.Load() {
			continue // set up when first used
		}
		sctx, cancel := step()
		gone, err := b.workGone(sctx, q)
		if err == nil && (gone || advStream) {
			// A new advisory stream lacks the queue's advisory subject:
			// ensure adds it.
			q.ready.Store(false)
			err = q.ensure(sctx, b)
			if gone && err == nil {
				made = append(made, "stream and consumer of queue "+q.queue)
			}
		}
		cancel()
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(made) > 0 {
		b.log.Warn("jetstream: set up again what the server no longer had (it lost its store, or they were deleted)",
			zap.Strings("created", made))
	}
	return errors.Join(errs...)
}

// restoreStream creates the stream of cfg when it does not exist.
func (b *Backend) restoreStream(ctx context.Context, cfg jetstream.StreamConfig) (bool, error) {
	_, err := lookupStream(ctx, b.js, cfg.Name)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, fmt.Errorf("jetstream: stream %q: %w", cfg.Name, err)
	}
	if _, err := createOrUpdateStream(ctx, b.js, cfg); err != nil {
		return false, fmt.Errorf("jetstream: create stream %q: %w", cfg.Name, err)
	}
	return true, nil
}

// restoreAdvisories creates the advisory stream or its consumer when
// missing, and then makes the advisory reading, if it had started, read
// the new consumer (the old one ended with the consumer it read).
func (b *Backend) restoreAdvisories(ctx context.Context) (streamMade, consMade bool, err error) {
	name := b.names.advisoryStream()
	var c jetstream.Consumer
	s, err := lookupStream(ctx, b.js, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		c, streamMade, err = b.setUpAdvisoryStream(ctx)
		consMade = true
	case err != nil:
		return false, false, fmt.Errorf("jetstream: stream %q: %w", name, err)
	default:
		if _, err = s.Consumer(ctx, b.cfg.Consumer); errors.Is(err, jetstream.ErrConsumerNotFound) {
			c, err = b.setUpAdvisoryConsumer(ctx, s)
			consMade = true
		} else if err != nil {
			err = fmt.Errorf("jetstream: consumer %q of %q: %w", b.cfg.Consumer, name, err)
		}
	}
	if err != nil {
		return false, false, err
	}
	b.advMu.Lock()
	if c != nil {
		b.advCons = c
	}
	old := b.advCC
	restart := old != nil && (consMade || ended(old))
	if restart {
		// Stopped without waiting: its handler may be waiting for this
		// round (publishDead); it ends when that returns.
		old.Stop()
		b.advCC = nil
	}
	b.advMu.Unlock()
	if restart {
		if err := b.startAdvisories(); err != nil {
			return streamMade, consMade, err
		}
	}
	return streamMade, consMade, nil
}

// ended reports whether cc stopped (on its own: its consumer was deleted).
func ended(cc jetstream.ConsumeContext) bool {
	select {
	case <-cc.Closed():
		return true
	default:
		return false
	}
}

// workGone reports whether q's work stream or its durable consumer is
// missing on the server.
func (b *Backend) workGone(ctx context.Context, q *queueState) (bool, error) {
	s, err := lookupStream(ctx, b.js, q.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("jetstream: stream %q: %w", q.stream, err)
	}
	if _, err := s.Consumer(ctx, b.cfg.Consumer); errors.Is(err, jetstream.ErrConsumerNotFound) {
		return true, nil
	} else if err != nil {
		return false, fmt.Errorf("jetstream: consumer %q of %q: %w", b.cfg.Consumer, q.stream, err)
	}
	return false, nil
}

// lookupDead looks the dead-letter stream up for a read or a delete by
// its name. When the server has no such stream (deleted, or a store lost
// without a reconnect telling the backend), it asks keepStores for a
// round, waits for it and looks up once more: the stream is then the
// empty one the round set up, and what the lost one held is gone.
func (b *Backend) lookupDead(ctx context.Context) (jetstream.Stream, error) {
	name := b.names.deadStream()
	s, err := b.js.Stream(ctx, name)
	if storeGone(err) {
		if rerr := b.awaitRestore(ctx); rerr != nil {
			return nil, fmt.Errorf("jetstream: stream %q: %w; setting it up again: %w", name, err, rerr)
		}
		s, err = b.js.Stream(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: stream %q: %w", name, err)
	}
	return s, nil
}

// lastDone reads the last finished-key marker of subject. When no
// stream answers (the finished-key stream is gone), it asks keepStores
// for a round, waits for it and reads once more; the marker is then not
// found (the new stream is empty).
func (b *Backend) lastDone(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	m, err := b.done.GetLastMsgForSubject(ctx, subject)
	if storeGone(err) {
		if rerr := b.awaitRestore(ctx); rerr != nil {
			return nil, fmt.Errorf("%w; setting the stream %q up again: %w", err, b.names.doneStream(), rerr)
		}
		m, err = b.done.GetLastMsgForSubject(ctx, subject)
	}
	return m, err
}
