package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

var _ queue.TaskFinder = (*Backend)(nil)

// maxFindScan bounds the messages of a work stream that one lookup reads.
const maxFindScan = 20_000

// FindTasks finds the tasks of queue queueName with l's id or key:
//
//   - in the queue's work stream (at most its first 20,000 messages, read
//     one request each, as a work-queue stream admits no second consumer): a task waiting for its NotBefore (a message
//     schedule) is delayed; one the durable consumer delivered and that is
//     not acknowledged is in flight (running, prefetched, or waiting for a
//     retry's redelivery: delayed, with its due time, when this process
//     scheduled the retry); the others are ready;
//   - among the dead letters (headers only);
//   - by key only: the marker of a finished key (kept for the duplicate
//     window), which says whether the task succeeded or was
//     dead-lettered.
func (b *Backend) FindTasks(ctx context.Context, queueName string, l queue.TaskLookup) (queue.TaskSearch, error) {
	if err := l.Check(); err != nil {
		return queue.TaskSearch{}, err
	}
	if err := b.usable(); err != nil {
		return queue.TaskSearch{}, err
	}
	qn, err := b.names.forQueue(queueName)
	if err != nil {
		return queue.TaskSearch{}, err
	}
	s := queue.TaskSearch{Found: []queue.FoundTask{},
		Searched: []string{"work stream " + qn.stream + " (ready, delayed and in-flight tasks)", "dead letters (stream " + b.names.deadStream() + ")"}}
	match := func(t *task.Task) bool {
		if l.ID != "" {
			return t.ID == l.ID
		}
		return t.Key == l.Key
	}
	if err := b.findQueued(ctx, qn, match, &s); err != nil {
		return s, err
	}
	if err := b.scanDeadHeaders(ctx, qn, 1, func(_ uint64, d queue.DeadLetter) bool {
		if (l.ID != "" && d.Task.ID == l.ID) || (l.Key != "" && d.Task.Key == l.Key) {
			s.Found = append(s.Found, queue.FoundDead(d))
		}
		return true
	}); err != nil {
		return s, err
	}
	if l.Key == "" {
		s.NotSearched = append(s.NotSearched, "finished tasks: the backend remembers them by key only (look up by key), and only keys that the producer chose (a task enqueued without key or id is forgotten once it finished)")
		return s, nil
	}
	s.Searched = append(s.Searched, fmt.Sprintf("finished keys that producers chose (stream %s, kept for %s, queue.jetstream.duplicate_window)", b.names.doneStream(), b.cfg.DuplicateWindow))
	// The marker of the key a producer gave, and of the generated key
	// written the same, if it can be one (a keyless task's success on
	// its last attempt, or told to its source, is recorded: done.go).
	q := &queueState{queueNames: qn}
	for _, keyed := range [...]bool{true, false} {
		if !keyed && !generatedShape(l.Key) {
			break
		}
		m, err := b.lastDone(ctx, q.doneSubject(l.Key, keyed))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound) || isNotFound(err):
		case err != nil:
			return s, fmt.Errorf("jetstream: look up key %q of %q: %w", l.Key, queueName, err)
		default:
			o, reason, _ := strings.Cut(string(m.Data), "\n")
			switch task.Outcome(o) {
			case task.Succeeded:
				s.Found = append(s.Found, queue.FoundTask{State: queue.StateSucceeded, Task: &task.Task{Key: l.Key, Queue: queueName}, At: m.Time})
			case task.DeadLettered:
				if !hasDead(s.Found) { // the dead letter itself is listed when still kept
					s.Found = append(s.Found, queue.FoundTask{State: queue.StateDead, Task: &task.Task{Key: l.Key, Queue: queueName}, Reason: reason, At: m.Time})
				}
			}
		}
	}
	return s, nil
}

func hasDead(fs []queue.FoundTask) bool {
	for _, f := range fs {
		if f.State == queue.StateDead {
			return true
		}
	}
	return false
}

// findQueued reads the work stream of qn, one message per request (at
// most maxFindScan), for the messages match accepts, and adds them to s
// with their state.
func (b *Backend) findQueued(ctx context.Context, qn queueNames, match func(*task.Task) bool, s *queue.TaskSearch) error {
	st, err := b.js.Stream(ctx, qn.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("jetstream: stream %q: %w", qn.stream, err)
	}
	var delivered uint64 // the durable consumer's last delivered stream sequence
	if c, err := st.Consumer(ctx, b.cfg.Consumer); err == nil {
		delivered = c.CachedInfo().Delivered.Stream
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("jetstream: consumer %q of %q: %w", b.cfg.Consumer, qn.stream, err)
	}
	var retryAt map[uint64]time.Time
	if q := b.knownQueue(qn.queue); q != nil {
		q.pmu.Lock()
		retryAt = make(map[uint64]time.Time, len(q.nakDelayed))
		now := time.Now()
		for seq, at := range q.nakDelayed {
			if at.After(now) { // a retry whose delay ended is redelivered: no longer delayed
				retryAt[seq] = at
			}
		}
		q.pmu.Unlock()
	}
	// A work-queue stream admits no second consumer: the messages are
	// read one by one, each the next after the last (a stored message
	// costs one request, its payload discarded).
	first, read := st.CachedInfo().State.FirstSeq, 0
	for seq := max(first, 1); ; read++ {
		if read >= maxFindScan {
			s.NotSearched = append(s.NotSearched, fmt.Sprintf("the work stream beyond its first %d messages (from sequence %d on)", maxFindScan, seq))
			return nil
		}
		raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) || isNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("jetstream: read the tasks of %q: %w", qn.queue, err)
		}
		seq = raw.Sequence + 1
		t, _, err := decodeTask(raw.Header, nil, qn.queue)
		if err != nil || !match(t) {
			continue // not a task this backend wrote, or another task
		}
		f := queue.FoundTask{Task: t, State: queue.StateReady, PayloadSize: len(raw.Data)}
		switch {
		case strings.HasPrefix(raw.Subject, qn.schedPrefix):
			f.State, f.DueAt = queue.StateDelayed, t.NotBefore
		case !retryAt[raw.Sequence].IsZero():
			f.State, f.DueAt = queue.StateDelayed, retryAt[raw.Sequence]
		case t.NotBefore.After(time.Now()): // a server without message schedules
			f.State, f.DueAt = queue.StateDelayed, t.NotBefore
		case raw.Sequence <= delivered:
			f.State = queue.StateInFlight
		}
		s.Found = append(s.Found, f)
	}
}
