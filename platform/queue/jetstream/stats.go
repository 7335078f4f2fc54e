package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/platform/queue"
)

// Stats returns the counts of queueName from the stream and consumer
// info: Ready is the consumer's NumPending (exact: stored, never
// delivered); InFlight is NumAckPending (leased deliveries, plus tasks
// waiting out a Retry back-off and expired leases not yet redelivered,
// which the server also holds as pending acks); Delayed is the
// not-yet-fired NotBefore schedules (stream messages minus the two
// above, less acked tasks a crash left stored: see dropAcked); Dead is
// the queue's message count in the dead-letter stream. DeadDiscarded is
// this process's count, since it started, of the queue's dead letters it
// discarded because the dead-letter stream was full (Config.Dead
// MaxBytes, MaxMsgs; discardOldestDead): another host's discards are in
// that host's Stats, and dead letters expired at Config.Dead.MaxAge are
// not counted. FinishedKeysForgotten is 0: the finished-key stream has
// no bound that forgets a key before its window ends. A queue never
// used has zero counts.
func (b *Backend) Stats(ctx context.Context, queueName string) (queue.Stats, error) {
	st := queue.Stats{Queue: queueName}
	if err := b.usable(); err != nil {
		return st, err
	}
	qn, err := b.names.forQueue(queueName)
	if err != nil {
		return st, err
	}
	s, err := b.js.Stream(ctx, qn.stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return st, fmt.Errorf("jetstream: stream %q: %w", qn.stream, err)
	default:
		info := s.CachedInfo()
		ci, err := s.Consumer(ctx, b.cfg.Consumer)
		var total int64 = int64(info.State.Msgs)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			sub, err := s.Info(ctx, jetstream.WithSubjectFilter(qn.subject))
			if err != nil {
				return st, fmt.Errorf("jetstream: stream info %q: %w", qn.stream, err)
			}
			st.Ready = int64(sub.State.Subjects[qn.subject])
			total = int64(sub.State.Msgs)
		case err != nil:
			return st, fmt.Errorf("jetstream: consumer %q of %q: %w", b.cfg.Consumer, qn.stream, err)
		default:
			c := ci.CachedInfo()
			st.Ready = int64(c.NumPending)
			st.InFlight = int64(c.NumAckPending)
			// Acked tasks a crash left stored (see dropAcked) are
			// finished, not delayed.
			left, err := ackedLeft(ctx, s, qn.subject, c.AckFloor.Stream, nil)
			if err != nil {
				return st, err
			}
			total -= int64(left)
		}
		st.Delayed = max(0, total-st.Ready-st.InFlight)
		// Prefetched messages are pending acks for the server but ready
		// for us; retries waiting out their delay are delayed.
		if q := b.knownQueue(queueName); q != nil {
			buffered, nakDelayed := q.prefetched(time.Now())
			moved := min(int64(buffered), st.InFlight)
			st.Ready += moved
			st.InFlight -= moved
			moved = min(int64(nakDelayed), st.InFlight)
			st.Delayed += moved
			st.InFlight -= moved
		}
	}
	dead, err := b.lookupDead(ctx)
	if err != nil {
		return st, err
	}
	di, err := dead.Info(ctx, jetstream.WithSubjectFilter(qn.deadSubject))
	if err != nil {
		return st, fmt.Errorf("jetstream: stream info %q: %w", b.names.deadStream(), err)
	}
	st.Dead = int64(di.State.Subjects[qn.deadSubject])
	st.DeadDiscarded = b.deadDiscardedOf(queueName)
	return st, nil
}

// Queues lists the queues that have a work stream or dead letters under
// this backend's stream prefix, sorted.
func (b *Backend) Queues(ctx context.Context) ([]string, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	lister := b.js.StreamNames(ctx, jetstream.WithStreamListSubject(b.names.queueSubjects()))
	for name := range lister.Name() {
		if q, ok := b.names.queueOfStream(name); ok {
			seen[q] = true
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("jetstream: list streams: %w", err)
	}
	dead, err := b.lookupDead(ctx)
	if err != nil {
		return nil, err
	}
	di, err := dead.Info(ctx, jetstream.WithSubjectFilter(b.names.deadSubjects()))
	if err != nil {
		return nil, fmt.Errorf("jetstream: stream info %q: %w", b.names.deadStream(), err)
	}
	for subj := range di.State.Subjects {
		if q, ok := b.names.queueOfDeadSubject(subj); ok {
			seen[q] = true
		}
	}
	out := make([]string, 0, len(seen))
	for q := range seen {
		out = append(out, q)
	}
	slices.Sort(out)
	return out, nil
}

// knownQueue returns the state of a queue this process used, or nil.
func (b *Backend) knownQueue(name string) *queueState {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	return b.queues[name]
}
