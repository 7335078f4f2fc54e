package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/internal/jsapi"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
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

// exhausted dead-letters the message an advisory names: store the copy,
// tell the watcher, delete the message. A message already gone was
// handled before (the watcher was told before it was deleted).
func (b *Backend) exhausted(ctx context.Context, queueName string, a maxDeliveriesAdvisory, adv jetstream.Msg) error {
	q, err := b.queue(queueName)
	if err != nil {
		return err
	}
	s, err := b.js.Stream(ctx, q.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %q: %w", q.stream, err)
	}
	raw, err := s.GetMsg(ctx, a.StreamSeq)
	if isMsgNotFound(err) || errors.Is(err, jetstream.ErrStreamNotFound) {
		// Handled before, or its stream deleted since the lookup above,
		// and the message with it.
		q.forgetMessage(a.StreamSeq)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get message %d: %w", a.StreamSeq, err)
	}
	t, keyed, err := decodeTask(raw.Header, raw.Data, queueName)
	foreign := err != nil
	if foreign {
		keyed = false // not a task: no key of its own to remember
		t = foreignStandIn(queueName, a.StreamSeq, raw.Header, raw.Data, raw.Time)
	}
	// t.Attempt: attempts used before a Release; the deliveries this
	// process gave back before NotBefore were not attempts (earlyOf).
	early := q.earlyOf(a.StreamSeq)
	t.Attempt = max(0, t.Attempt+int(a.Deliveries)-early)
	prev, err := b.storedCopy(ctx, q, a.StreamSeq, t.ID, adv)
	if err != nil {
		return err
	}
	if prev == nil && !foreign {
		// Given back on its last delivery, its copy stored although the
		// Release could not tell (releaseUnknown) or its ack was lost:
		// the task lives on as its copy, and is no dead letter.
		copied, err := b.releasedCopyQueued(ctx, q, s, a.StreamSeq, raw.Time, t.ID, t.Key, keyed)
		if err != nil {
			return err
		}
		if copied {
			if err := s.DeleteMsg(ctx, a.StreamSeq); err != nil && !isMsgNotFound(err) {
				return fmt.Errorf("delete message %d, released: %w", a.StreamSeq, err)
			}
			q.forgetMessage(a.StreamSeq)
			b.log.Info("jetstream: exhausted task not dead-lettered: its released copy is queued, or was delivered",
				zap.String("queue", queueName), zap.String("task", t.ID), zap.Uint64("seq", a.StreamSeq))
			return nil
		}
	}
	var stored deadInfo
	if prev != nil {
		// Stored before (an earlier handling of this advisory, or a
		// DeadLetter whose term was lost): tell it as it was.
		stored = deadInfo{reason: prev.Reason, at: prev.At, attempts: prev.Task.Attempt}
	} else {
		// A copy stored within the duplicate window is the one told.
		reason := exhaustedReason(a.Deliveries, early, t.Attempt)
		if stored, err = b.publishDead(ctx, q, t, keyed, a.StreamSeq, t.Attempt, reason); err != nil {
			return err
		}
	}
	t.Attempt = stored.attempts
	_ = adv.InProgress()
	b.tellDeadOnce(q, a.StreamSeq, queue.DeadLetter{Task: t, Reason: stored.reason, At: stored.at})
	if keyed {
		if err := b.markDone(ctx, q, t.Key, true, task.DeadLettered, stored.reason); err != nil {
			return err
		}
	}
	if err := s.DeleteMsg(ctx, a.StreamSeq); err != nil && !isMsgNotFound(err) {
		return fmt.Errorf("delete message %d: %w", a.StreamSeq, err)
	}
	q.forgetMessage(a.StreamSeq)
	return nil
}

// exhaustedReason is the reason of the dead letter of a task the server
// stopped delivering after deliveries, early of which came before its
// NotBefore and were given back unrun; attempts ran. Only a delivery
// that ran can have had its lease expire.
func exhaustedReason(deliveries uint64, early, attempts int) string {
	switch {
	case early == 0:
		return fmt.Sprintf("max deliveries (%d) exhausted: lease expired on the last delivery", deliveries)
	case attempts == 0:
		return fmt.Sprintf("max deliveries (%d) exhausted before the task's not-before time: every delivery came early and was given back; it never ran", deliveries)
	}
	return fmt.Sprintf("max deliveries (%d) exhausted: %d came before the task's not-before time and were given back unrun, %d ran", deliveries, early, attempts)
}

// copyLookupMargin is how much earlier than the advisory a dead-letter
// copy made for it is looked for: the advisory and the dead-letter
// streams may have their leaders on servers whose clocks differ.
const copyLookupMargin = time.Minute

// storedCopy returns the dead letter stored before for the message seq
// (task id) of q's work stream, whose max-deliveries advisory is adv, or
// nil. Such a copy was stored by an earlier handling of adv, after it, or
// before it, during the message's last delivery: by a DeadLetter whose
// term was lost, or by Close's give-back, which leaves a task it
// dead-lettered to the server (releaseRefused); the server publishes the
// advisory once that delivery's AckWait ran out, up to an AckWait (and a
// settlement's publish: Config.PublishTimeout) after the copy. The server
// de-duplicates the copy by its Nats-Msg-Id (deadMsgID) within the
// dead-letter stream's duplicate window only: an advisory young enough
// that any such copy is less than half the window old (the other half is
// the margin for the clocks of host and server) is not looked up. An
// older one (its handling failed after the copy and is tried again, it
// waited for a process to read it, or the AckWait is long for the window)
// costs a headers-only scan of the queue's dead letters stored since an
// AckWait before the advisory (scanDeadHeadersFrom: a consumer created,
// read and deleted).
func (b *Backend) storedCopy(ctx context.Context, q *queueState, seq uint64, id string, adv jetstream.Msg) (*queue.DeadLetter, error) {
	before := b.cfg.AckWait + b.cfg.PublishTimeout // how much older than adv a copy made for its message can be
	md, err := adv.Metadata()
	if err == nil && time.Since(md.Timestamp)+before < b.cfg.DuplicateWindow/2 {
		return nil, nil
	}
	from := deadScanFrom{seq: 1} // the advisory's age unknown: every dead letter of the queue
	if err == nil {
		from = deadScanFrom{since: md.Timestamp.Add(-before - copyLookupMargin)}
	}
	return b.deadCopyOf(ctx, q, seq, id, from)
}

// deadCopyOf returns the dead letter stored for the message seq (task id)
// of q's work stream among the queue's dead letters from from on, or nil:
// a headers-only scan (scanDeadHeadersFrom) for the copy's Nats-Msg-Id
// (deadMsgID) and task id.
func (b *Backend) deadCopyOf(ctx context.Context, q *queueState, seq uint64, id string, from deadScanFrom) (*queue.DeadLetter, error) {
	msgID := deadMsgID(q.stream, seq)
	var found *queue.DeadLetter
	err := b.scanDeadHeadersFrom(ctx, q.queueNames, from, func(_ uint64, h nats.Header, d queue.DeadLetter) bool {
		if h.Get(hdrMsgID) == msgID && d.Task.ID == id {
			found = &d
			return false
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("look for the dead letter of message %d: %w", seq, err)
	}
	return found, nil
}
