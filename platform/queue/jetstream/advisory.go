package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/internal/jsapi"
)

// The server gives up on a message after MaxDeliver deliveries without
// telling the consumer: it publishes a MAX_DELIVERIES advisory and keeps
// the message in the work stream, never to deliver it again. The backend
// turns each such message into a dead letter. Advisories are core NATS
// messages, lost when nobody listens, so they are captured by a stream of
// their own, <prefix>_ADV_<consumer> (work-queue retention), and read by a
// durable consumer of the same name: an advisory is acknowledged only
// after its dead letter is stored, the watcher told and the work message
// deleted. A process that dies in between leaves the advisory
// unacknowledged and the message in its work stream; the next process
// (or another replica, after AckWait) does the work again, and stores no
// second dead-letter copy: within the dead-letter stream's duplicate
// window the copy's Nats-Msg-Id de-duplicates it; an advisory whose copy
// may be older than half the window (its handling failed after the copy
// and is tried again, it waited for a process, or the copy was stored
// during the message's last delivery, up to an AckWait before the
// advisory) first looks for the copy among the queue's dead letters
// stored since then (storedCopy), and stores none if it is there. The watcher is told the
// dead letter as stored, not as this handling would have made it: a copy
// de-duplicated by the server is read back (publishDead), one found by
// storedCopy is told as found. A message a Release on its last delivery
// left to the server, its copy stored, is no dead letter: its copy is
// looked for in the work stream (releasedCopyQueued), and a copy
// delivered before deleted it (dropReleased).

// maxDeliveriesAdvisory is the part of the server's advisory we use.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// advisoryRetry is how long a failed advisory waits before it is tried
// again the first time; each failure after doubles it, up to
// maxAdvisoryRetry (advisoryBackoff).
const (
	advisoryRetry    = time.Second
	maxAdvisoryRetry = time.Minute
)

// advisoryBackoff is how long the advisory m, which failed on its
// delivered-th delivery, waits before it is tried again: advisoryRetry,
// doubled with each delivery before, up to maxAdvisoryRetry. An advisory
// that fails for as long as something lasts (a look for a released copy
// behind a backlog longer than one look reads: releasedCopyQueued) would
// otherwise do its work again every second, holding the advisories
// behind it (they are handled one at a time).
func advisoryBackoff(m jetstream.Msg) time.Duration {
	delivered := uint64(1)
	if md, err := m.Metadata(); err == nil {
		delivered = md.NumDelivered
	}
	d := advisoryRetry
	for n := uint64(1); n < delivered && d < maxAdvisoryRetry; n++ {
		d *= 2
	}
	return min(d, maxAdvisoryRetry)
}

// ensureAdvisoryStream creates the stream that captures the
// max-deliveries advisories (its subjects are added queue by queue, see
// captureAdvisories) and its durable consumer. An existing stream is
// kept as it is: its subjects are the queues' subjects.
func (b *Backend) ensureAdvisoryStream(ctx context.Context) error {
	c, _, err := b.setUpAdvisoryStream(ctx)
	if err != nil {
		return err
	}
	b.advMu.Lock()
	b.advCons = c
	b.advMu.Unlock()
	return nil
}

// setUpAdvisoryStream creates the advisory stream when it does not exist
// (created says so) and creates or updates its durable consumer.
func (b *Backend) setUpAdvisoryStream(ctx context.Context) (c jetstream.Consumer, created bool, err error) {
	name := b.names.advisoryStream()
	s, err := lookupStream(ctx, b.js, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = jsapi.Retry(ctx, func(ctx context.Context) (jetstream.Stream, error) {
			s, err := b.js.CreateStream(ctx, jetstream.StreamConfig{
				Name:        name,
				Description: "plba: max-deliveries advisories of consumer " + b.cfg.Consumer + ", turned into dead letters",
				Subjects:    []string{b.names.prefix + ".adv." + b.cfg.Consumer}, // placeholder until a queue adds its own
				Retention:   jetstream.WorkQueuePolicy,
				Storage:     b.storage(),
				Replicas:    b.cfg.Replicas,
				Discard:     jetstream.DiscardNew,
			})
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return lookupStream(ctx, b.js, name) // another host's create won
			}
			created = err == nil
			return s, err
		})
	}
	if err != nil {
		return nil, false, fmt.Errorf("jetstream: create stream %q: %w", name, replicasProblem(err, b.cfg.Replicas))
	}
	if !created {
		want := jetstream.StreamConfig{Name: name, Replicas: b.cfg.Replicas, Storage: b.storage()}
		if err := b.compareStream(s.CachedInfo().Config, want, streamKeys{}); err != nil {
			return nil, false, err
		}
	}
	c, err = b.setUpAdvisoryConsumer(ctx, s)
	return c, created, err
}

// setUpAdvisoryConsumer creates or updates the durable consumer of the
// advisory stream s (setUpConsumer: its ack wait is every host's
// ack_wait, which a host that checks what it finds does not change).
func (b *Backend) setUpAdvisoryConsumer(ctx context.Context, s jetstream.Stream) (jetstream.Consumer, error) {
	c, err := b.setUpConsumer(ctx, s, jetstream.ConsumerConfig{
		Durable:     b.cfg.Consumer,
		Description: "plba: dead-letters exhausted tasks",
		AckPolicy:   jetstream.AckExplicitPolicy,
		AckWait:     b.cfg.AckWait,
		MaxDeliver:  -1,
	})
	if errors.Is(err, ErrSettingsDiffer) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: create consumer %q on %q: %w", b.cfg.Consumer, b.names.advisoryStream(), err)
	}
	return c, nil
}

// captureAdvisories adds the advisory subject of the work stream to the
// advisory stream, before the stream's consumer exists. One subject per
// work stream rather than a wildcard over the stream token, which would
// also capture, and collide with, the advisories of another stream
// prefix that uses the same consumer name. Replicas that add queues at
// the same time may overwrite each other's update: it is read back and
// retried until the subject is there.
func (b *Backend) captureAdvisories(ctx context.Context, stream string) error {
	name := b.names.advisoryStream()
	subj := b.names.advisorySubject(stream)
	b.advMu.Lock()
	defer b.advMu.Unlock()
	for range 20 {
		s, err := lookupStream(ctx, b.js, name)
		if err != nil {
			return fmt.Errorf("jetstream: stream %q: %w", name, err)
		}
		cfg := s.CachedInfo().Config
		if slices.Contains(cfg.Subjects, subj) {
			return nil
		}
		cfg.Subjects = append(cfg.Subjects, subj)
		if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("jetstream: add %q to stream %q: %w", subj, name, err)
		}
	}
	return fmt.Errorf("jetstream: add %q to stream %q: concurrent updates kept removing it", subj, name)
}

// startAdvisories starts reading the advisory stream, once.
func (b *Backend) startAdvisories() error {
	b.advMu.Lock()
	defer b.advMu.Unlock()
	if b.advCC != nil || b.isClosing() {
		return nil
	}
	cc, err := b.advCons.Consume(b.onAdvisory, jetstream.PullMaxMessages(16),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if b.isClosing() {
				return
			}
			b.log.Debug("jetstream: advisory consumer", zap.Error(err))
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				b.askRestore() // sets it up again and reads it anew (restore.go)
			}
		}))
	if err != nil {
		return fmt.Errorf("jetstream: consume %q: %w", b.names.advisoryStream(), err)
	}
	b.advCC = cc
	return nil
}

// stopAdvisories stops reading advisories and waits for the one being
// handled, or ctx.
func (b *Backend) stopAdvisories(ctx context.Context) error {
	b.advMu.Lock()
	cc := b.advCC
	b.advMu.Unlock()
	if cc == nil {
		return nil
	}
	cc.Stop()
	select {
	case <-cc.Closed():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("jetstream: advisory consumer: %w", ctx.Err())
	}
}

// onAdvisory dead-letters the message an advisory names, then
// acknowledges the advisory; on failure the advisory comes back later.
func (b *Backend) onAdvisory(m jetstream.Msg) {
	var a maxDeliveriesAdvisory
	if err := json.Unmarshal(m.Data(), &a); err != nil {
		b.log.Warn("jetstream: bad max-deliveries advisory", zap.Error(err))
		_ = m.Term()
		return
	}
	if a.StreamSeq == 0 {
		// Names no message (the server's never do: forged or damaged);
		// looking it up fails the same way every time.
		b.log.Warn("jetstream: bad max-deliveries advisory: no stream_seq", zap.String("stream", a.Stream), zap.ByteString("advisory", clipBytes(m.Data())))
		_ = m.Term()
		return
	}
	queueName, ok := b.names.queueOfStream(a.Stream)
	if !ok || a.Consumer != b.cfg.Consumer {
		_ = m.Ack()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.PublishTimeout)
	defer cancel()
	go func() { // stop the work when Close tears down
		select {
		case <-b.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	working := b.keepAdvisoryInProgress(m)
	err := b.exhausted(ctx, queueName, a, m)
	working() // before the settlement, which a later in-progress would undo
	if err != nil {
		b.log.Error("jetstream: dead-letter exhausted task (tried again later)", zap.String("queue", queueName),
			zap.Uint64("seq", a.StreamSeq), zap.Error(err))
		_ = m.NakWithDelay(advisoryBackoff(m))
		return
	}
	if err := m.Ack(); err != nil {
		b.log.Warn("jetstream: ack advisory", zap.Error(err))
	}
}

// keepAdvisoryInProgress tells the server every third of the advisory
// consumer's AckWait that the advisory m is still being handled, until
// the function it returns is called (which waits for the last word). A
// handling may take up to Config.PublishTimeout (a look for a released
// copy behind a long backlog, dead letters scanned, a slow server), and
// the AckWait may be shorter: the server would deliver the advisory again
// meanwhile, handled once more as soon as this handling ends, and a
// failed one tried again at once rather than after its backoff
// (advisoryBackoff), which an in-progress sent after the negative ack
// would undo too.
func (b *Backend) keepAdvisoryInProgress(m jetstream.Msg) func() {
	wait := b.cfg.AckWait
	b.advMu.Lock()
	if c := b.advCons; c != nil {
		if info := c.CachedInfo(); info != nil && info.Config.AckWait > 0 {
			wait = min(wait, info.Config.AckWait) // set up by another host
		}
	}
	b.advMu.Unlock()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(max(wait/3, time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = m.InProgress()
			}
		}
	})
	return func() {
		close(stop)
		wg.Wait()
	}
}
