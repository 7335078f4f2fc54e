package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// queueState is this process's handle on one queue: its stream, its
// durable consumer and the prefetch buffer fed by the puller.
type queueState struct {
	queueNames
	ready atomic.Bool // stream and consumer exist
	// setUp is set when ensure first succeeded and never cleared: the
	// queue's stream is then checked (checkQueues) and set up again when
	// lost (restoreStores).
	setUp atomic.Bool

	// ackWaitNs is the consumer's AckWait, set by ensure (again when the
	// consumer is re-created) while deliveries read it.
	ackWaitNs atomic.Int64

	mu      sync.Mutex
	st      jetstream.Stream   // the work stream, set by ensure
	cons    jetstream.Consumer // the durable consumer, set by ensure
	started bool               // puller running

	// Prefetched messages, oldest first. Guarded by pmu.
	pmu        sync.Mutex
	buf        []inbound
	nakDelayed map[uint64]time.Time // stream seq -> retry due (local Retry with a delay)
	retried    map[uint64]retried   // stream seq -> the local Retry of its last delivery (see retriedHere)
	early      map[uint64]int       // stream seq -> deliveries given back before NotBefore
	told       map[uint64]struct{}  // stream seqs whose dead letter this process told its watcher, not yet deleted (see exhausted)
	hasEarly   atomic.Bool          // early is not empty
	taken      int                  // messages Lease took since rateAt
	rateAt     time.Time            // when rate was last sampled
	rate       float64              // messages Lease takes per second (see ahead)

	fmu         sync.Mutex
	cancelFetch context.CancelFunc // ends the open Fetch (repull); nil when none

	// holding indexes the deliveries of this queue handed out and not
	// settled by stream sequence (see holder). Guarded by the Backend's
	// imu, with its inflight set, and kept in step with it (track).
	holding map[uint64]*receipt

	avail chan struct{} // signalled when buf gains messages
	room  chan struct{} // signalled when Lease takes messages
	gone  atomic.Bool   // consumer deleted: the puller re-creates it
}

// ackWait is the consumer's AckWait.
func (q *queueState) ackWait() time.Duration { return time.Duration(q.ackWaitNs.Load()) }

// inbound is a prefetched message, its metadata (nil when it has none:
// deliver says so) and when the server's AckWait timer was last
// (re)started for it.
type inbound struct {
	msg     jetstream.Msg
	md      *jetstream.MsgMetadata
	touched time.Time
}

// Declare creates or updates the stream and the durable consumer of each
// queue (queue.Declarer), as the first Enqueue or Lease would.
func (b *Backend) Declare(ctx context.Context, queues ...string) error {
	if err := b.usable(); err != nil {
		return err
	}
	for _, name := range queues {
		q, err := b.queue(name)
		if err != nil {
			return err
		}
		if err := q.ensure(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// knownQueues returns the queues this process has state for, as a copy
// the caller may range over without holding qmu.
func (b *Backend) knownQueues() []*queueState {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	qs := make([]*queueState, 0, len(b.queues))
	for _, q := range b.queues {
		qs = append(qs, q)
	}
	return qs
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
		retried:    make(map[uint64]retried),
		early:      make(map[uint64]int),
		holding:    make(map[uint64]*receipt),
		avail:      make(chan struct{}, 1),
		room:       make(chan struct{}, 1),
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
		// A single replica answers direct gets from what it stored: a
		// lookup reads the tasks in batches (FindTasks). With replicas a
		// follower would answer too, from what it has applied.
		AllowDirect: b.directDone(),
		Metadata:    map[string]string{"plba_queue": q.queue},
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
	sc := b.streamConfig(q)
	s, err := b.setUpStream(ctx, sc, streamKeys{dup: "duplicate_window", msgs: "max_msgs", bytes: "max_bytes"})
	if errors.Is(err, ErrSettingsDiffer) {
		return fmt.Errorf("jetstream: queue %q: %w", q.queue, err)
	}
	if err != nil && b.limited() && strings.Contains(err.Error(), "schedules can not be disabled") {
		return fmt.Errorf("jetstream: stream %q was created without max_msgs/max_bytes and stores message schedules, which a bounded stream cannot: "+
			"drain the queue and delete the stream to bound it, or unset queue.jetstream.max_msgs and max_bytes: %w", q.stream, err)
	}
	if err != nil {
		return fmt.Errorf("jetstream: create stream %q: %w", q.stream, replicasProblem(err, b.cfg.Replicas))
	}
	if err := b.captureAdvisories(ctx, q.stream); err != nil {
		return err
	}
	cons, err := b.setUpConsumer(ctx, s, jetstream.ConsumerConfig{
		Durable:       b.cfg.Consumer,
		Description:   "plba workers of queue " + q.queue,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.cfg.AckWait,
		MaxDeliver:    b.cfg.MaxDeliver,
		MaxAckPending: b.cfg.MaxAckPending,
		FilterSubject: q.subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if errors.Is(err, ErrSettingsDiffer) {
		return fmt.Errorf("jetstream: queue %q: %w", q.queue, err)
	}
	if err != nil {
		return fmt.Errorf("jetstream: create consumer %q on %q: %w", b.cfg.Consumer, q.stream, err)
	}
	if _, err := b.dropAcked(ctx, q, s, cons); err != nil {
		return err
	}
	q.ackWaitNs.Store(int64(cons.CachedInfo().Config.AckWait))
	q.st, q.cons = s, cons
	q.ready.Store(true)
	q.setUp.Store(true)
	return nil
}

// restore sets the queues of the tasks lost (indexes into qs) up again
// after a publish that no stream answered found the queue's work stream
// gone: it waits for a round of the backend's restoration (restoreStores,
// which also sets up again the work streams and consumers of the queues
// in use) and returns the tasks whose queue is set up again; fail is
// called for the others.
func (b *Backend) restore(ctx context.Context, qs []*queueState, lost []int, fail func(i int, err error)) []int {
	err := b.awaitRestore(ctx)
	var again []int
	for _, i := range lost {
		switch {
		case err != nil:
			fail(i, err)
		case !qs[i].ready.Load():
			fail(i, fmt.Errorf("jetstream: queue %q was not set up again", qs[i].queue))
		default:
			again = append(again, i)
		}
	}
	return again
}

// consumer returns the queue's durable consumer, as ensure last made it.
func (q *queueState) consumer() jetstream.Consumer {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cons
}

// workStream returns the queue's work stream, as ensure last found it.
func (q *queueState) workStream() jetstream.Stream {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.st
}

// signal wakes one waiter of ch without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// earlyOf returns how many deliveries of the message seq this process
// gave back before the task's NotBefore (deliver): they are not attempts.
// The count is kept until the message is settled for good (forgetEarly),
// so that a delivery after a lease that ran out, or the MAX_DELIVERIES
// advisory that ends the message (exhausted), still subtracts them. It is
// this process's memory: another process's early deliveries of the
// message are counted as attempts. A queue with no early delivery pays
// one atomic load (inlined).
func (q *queueState) earlyOf(seq uint64) int {
	if !q.hasEarly.Load() {
		return 0
	}
	return q.earlyCount(seq)
}

func (q *queueState) earlyCount(seq uint64) int {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	return q.early[seq]
}

// maxEarly bounds queueState.early: past it, deliveries skipped (see
// skipped) count as attempts, and memory stays bounded should other
// processes settle the messages this one skipped.
const maxEarly = 1 << 16

// skipped counts a delivery of the message seq that this process did
// not hand out and left to the server, which counts it: a delivery again
// of a message it holds (holding.go), one whose lease ran out in the
// prefetch buffer (deliver), or one whose finished key or dead letter
// could not be looked for. It is no attempt, as a delivery before
// the task's NotBefore is none (earlyOf): without it, a task the server
// delivered again and again during an outage, not handed out, reached
// its last attempt (max_attempts) having run fewer times, and was
// dead-lettered for it.
func (q *queueState) skipped(seq uint64) {
	q.pmu.Lock()
	q.skippedLocked(seq)
	q.pmu.Unlock()
}

// skippedLocked is skipped with q.pmu held.
func (q *queueState) skippedLocked(seq uint64) {
	if len(q.early) < maxEarly || q.early[seq] > 0 {
		q.early[seq]++
		q.hasEarly.Store(true)
	}
}

// forgetEarly drops the early count of the message seq, settled for good
// (acknowledged, terminated, deleted).
func (q *queueState) forgetEarly(seq uint64) {
	if !q.hasEarly.Load() {
		return
	}
	q.pmu.Lock()
	delete(q.early, seq)
	q.hasEarly.Store(len(q.early) > 0)
	q.pmu.Unlock()
}

// maxTold bounds queueState.told: past it a dead letter handled again is
// told again (at least once, as across processes), and memory stays
// bounded should other processes finish the messages this one told.
const maxTold = 4096

// toldBefore reports whether this process told its watcher of the dead
// letter of the message seq already (markTold), which is not deleted yet.
func (q *queueState) toldBefore(seq uint64) bool {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	_, ok := q.told[seq]
	return ok
}

// markTold records that the watcher was told of the dead letter of the
// message seq.
func (q *queueState) markTold(seq uint64) {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	if q.told == nil {
		q.told = make(map[uint64]struct{})
	}
	if len(q.told) < maxTold {
		q.told[seq] = struct{}{}
	}
}

// forgetMessage drops what this process remembers of the message seq,
// deleted or terminated: its early count and its told mark.
func (q *queueState) forgetMessage(seq uint64) {
	q.forgetEarly(seq)
	q.pmu.Lock()
	defer q.pmu.Unlock()
	delete(q.told, seq)
}
