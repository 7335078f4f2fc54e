package jetstream

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

var _ queue.TaskFinder = (*Backend)(nil)

// maxFindScan bounds the messages of a work stream that one lookup reads.
const maxFindScan = 20_000

// scanLimit is the bound one lookup on a work stream reads to:
// maxFindScan, or the configuration's own (findScan).
func (b *Backend) scanLimit() int64 {
	if b.cfg.findScan > 0 {
		return b.cfg.findScan
	}
	return maxFindScan
}

// FindTasks finds the tasks of queue queueName with l's id or key:
//
//   - in the queue's work stream (at most 20,000 of its messages, read
//     one request each, as a work-queue stream admits no second
//     consumer, findWorkers ranges of it at once): a task waiting for its NotBefore (a message
//     schedule) is delayed; one the durable consumer delivered and that is
//     not acknowledged is in flight (running, prefetched, or waiting for a
//     retry's redelivery: delayed, with its due time, when this process
//     scheduled the retry); the others are ready;
//   - among the dead letters (headers only);
//   - when neither held it, in the work stream once more: a re-drive
//     stores the task's copy there before it deletes the dead letter,
//     and may have done both between the two reads (a dead letter is
//     stored before its work message goes, so the other way round the
//     dead letters hold it);
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
	match := func(_ *jetstream.RawStreamMsg, t *task.Task) bool {
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
	if len(s.Found) == 0 {
		// A task re-driven meanwhile was stored in the work stream after
		// the read of it, and its dead letter deleted before the read of
		// the dead letters: the work stream is read once more (a task
		// dead-lettered meanwhile is among the dead letters, stored
		// before its work message went).
		again := queue.TaskSearch{Found: []queue.FoundTask{}}
		if err := b.findQueued(ctx, qn, match, &again); err != nil {
			return s, err
		}
		s.Found = again.Found
		if len(s.NotSearched) == 0 {
			s.NotSearched = again.NotSearched
		}
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
		case isMsgNotFound(err):
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

// findQueued reads the work stream of qn (at most maxFindScan messages)
// for the messages match accepts (a message and its task; match may be
// called from several goroutines at once), and adds them to s with their state,
// in stream order. A work-queue stream admits no second consumer beside
// the durable one, whose filter takes every task subject: the messages
// are read by direct gets, up to findBatch a request, when the server
// answers batched direct gets (2.11 on) and the stream allows them (a
// single replica); else (the stream's server older than the one the
// backend connected to: the rest of the stream) one request each, the next stored after the
// last, the stream's sequences split into findWorkers ranges read at
// once (a stored message costs one request, its payload discarded). A
// lookup through 20,000 queued tasks takes a fraction of a second
// (TestFindTasksThroughABacklog).
func (b *Backend) findQueued(ctx context.Context, qn queueNames, match func(*jetstream.RawStreamMsg, *task.Task) bool, s *queue.TaskSearch) error {
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
	state := func(raw *jetstream.RawStreamMsg, t *task.Task) queue.FoundTask {
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
		return f
	}
	info := st.CachedInfo()
	var budget atomic.Int64
	budget.Store(b.scanLimit())
	keep := func(f *[]queue.FoundTask) func(*jetstream.RawStreamMsg) {
		return func(raw *jetstream.RawStreamMsg) {
			t, _, err := decodeTask(raw.Header, nil, qn.queue)
			if err != nil || !match(raw, t) {
				return // not a task this backend wrote, or another task
			}
			*f = append(*f, state(raw, t))
		}
	}
	rs := b.readWork(ctx, st, max(info.State.FirstSeq, 1), &budget, keep)
	var errs []error
	var unread []string
	for _, r := range rs {
		s.Found = append(s.Found, r.found...)
		if r.err != nil && (len(errs) == 0 || !errors.Is(r.err, context.Canceled)) {
			errs = append(errs, r.err)
		}
		if r.unreadFrom != 0 {
			unread = append(unread, r.unread())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("jetstream: read the tasks of %q: %w", qn.queue, err)
	}
	if len(unread) > 0 {
		s.NotSearched = append(s.NotSearched, fmt.Sprintf("the work stream beyond the %d messages a lookup reads (sequences %s)", b.scanLimit(), strings.Join(unread, ", ")))
	}
	return nil
}

// readWork reads the work stream st from the sequence lo to its end
// through keep, until budget is used up: in batches (findQueued) when the
// server answers batched direct gets and the stream allows them, else in
// ranges read at once, one request a message. The ranges read say what
// each found, where it stopped and why.
func (b *Backend) readWork(ctx context.Context, st jetstream.Stream, lo uint64, budget *atomic.Int64, keep func(*[]queue.FoundTask) func(*jetstream.RawStreamMsg)) []findRange {
	info := st.CachedInfo()
	if !b.multiGet || !info.Config.AllowDirect {
		rs := findRanges(lo, info.State.LastSeq)
		b.readRanges(ctx, st, rs, budget, keep)
		return rs
	}
	// One range, read in batches.
	r := findRange{lo: lo, hi: math.MaxUint64}
	r.err = r.readBatches(ctx, b.js, info.Config.Name, budget, keep(&r.found))
	if !errors.Is(r.err, jetstreamext.ErrBatchUnsupported) {
		return []findRange{r}
	}
	// The stream's server answers one message a direct get (before 2.11:
	// a cluster upgraded one server after the other, or a host that
	// reconnected to an older one): the rest is read one message per
	// request.
	rest := findRanges(r.lo, info.State.LastSeq)
	b.readRanges(ctx, st, rest, budget, keep)
	return append([]findRange{{found: r.found}}, rest...)
}

// readRanges reads the ranges rs of stream st at once, each message by
// request, through keep.
func (b *Backend) readRanges(ctx context.Context, st jetstream.Stream, rs []findRange, budget *atomic.Int64, keep func(*[]queue.FoundTask) func(*jetstream.RawStreamMsg)) {
	var wg sync.WaitGroup
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &rs[i]
			r.err = r.read(rctx, st, budget, keep(&r.found))
			if r.err != nil {
				cancel() // the lookup fails: the other ranges need not be read
			}
		}()
	}
	wg.Wait()
}

// findBatch and findBatchBytes bound a batch of a work stream's messages
// that one direct get returns.
const (
	findBatch      = 1000
	findBatchBytes = 4 << 20
)

// readBatches reads r from r.lo to the stream's end with batched direct
// gets (a server from 2.11 on, a stream that allows direct gets), calling
// fn with each message, until budget is used up. r.lo follows the
// messages read: an error leaves it at the first not read
// (jetstreamext.ErrBatchUnsupported: the stream's server answers no
// batched gets).
func (r *findRange) readBatches(ctx context.Context, js jetstream.JetStream, stream string, budget *atomic.Int64, fn func(*jetstream.RawStreamMsg)) error {
	for {
		msgs, err := jetstreamext.GetBatch(ctx, js, stream, findBatch,
			jetstreamext.GetBatchSeq(r.lo), jetstreamext.GetBatchMaxBytes(findBatchBytes))
		if err != nil {
			return err
		}
		got := 0
		for raw, err := range msgs {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				return nil
			}
			if err != nil {
				return err
			}
			got++
			if budget.Add(-1) < 0 {
				r.unreadFrom = raw.Sequence
				return nil
			}
			fn(raw)
			r.lo = raw.Sequence + 1
		}
		if got == 0 {
			return nil
		}
	}
}

// findWorkers is how many ranges of a work stream one lookup reads at
// once; findMinRange is the fewest sequences a range spans.
const (
	findWorkers  = 16
	findMinRange = 256
)

// findRange is a range of a work stream's sequences that a lookup reads,
// from lo to hi (the last range has no end: a message stored since the
// lookup began is read too), and what reading it found.
type findRange struct {
	lo, hi     uint64
	found      []queue.FoundTask
	unreadFrom uint64 // not zero: the range was read up to here (the budget used up)
	err        error
}

// findRanges splits the sequences first to last into at most findWorkers
// ranges of findMinRange sequences or more.
func findRanges(first, last uint64) []findRange {
	span := uint64(1)
	if last > first {
		span = last - first + 1
	}
	n := min(max(span/findMinRange, 1), findWorkers)
	size := (span + n - 1) / n
	rs := make([]findRange, 0, n)
	for lo := first; uint64(len(rs)) < n; lo += size {
		rs = append(rs, findRange{lo: lo, hi: lo + size - 1})
	}
	rs[len(rs)-1].hi = math.MaxUint64
	return rs
}

// read reads the messages of r one request each, each the next stored
// after the last, calling fn with each, until the range or the stream
// ends, or budget (shared by the ranges) is used up.
func (r *findRange) read(ctx context.Context, st jetstream.Stream, budget *atomic.Int64, fn func(*jetstream.RawStreamMsg)) error {
	for seq := r.lo; seq <= r.hi; {
		raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(">"))
		if isMsgNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if raw.Sequence > r.hi {
			return nil // the next range's
		}
		if budget.Add(-1) < 0 {
			r.unreadFrom = raw.Sequence
			return nil
		}
		fn(raw)
		if raw.Sequence == math.MaxUint64 {
			return nil
		}
		seq = raw.Sequence + 1
	}
	return nil
}

// unread names the sequences of r left unread.
func (r *findRange) unread() string {
	if r.hi == math.MaxUint64 {
		return fmt.Sprintf("%d on", r.unreadFrom)
	}
	return fmt.Sprintf("%d-%d", r.unreadFrom, r.hi)
}
