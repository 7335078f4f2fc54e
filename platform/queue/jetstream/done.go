package jetstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/task"
)

// De-duplication across restarts. A work stream refuses a second task
// with the same Nats-Msg-Id (the task key) within the duplicate window,
// but the server keeps that table in memory and rebuilds it at start from
// the messages it still stores; an acknowledged task is deleted from its
// work stream, so after a restart its key would be accepted again. The
// backend therefore remembers finished keys itself: when a task is acked
// or dead-lettered, a marker without payload is stored on
// <prefix>.done.<queue>.<hash of key> in the stream <prefix>_DONE (limits
// retention, MaxAge = the duplicate window, one message per subject,
// direct gets), before the work message goes. Enqueue looks up every
// task's marker first and drops a task whose key finished within the
// window. Only keys a producer chose are recorded (task.KeyGenerated,
// decodeTask): a generated key cannot be enqueued again after a restart;
// a generated key's success on the task's last attempt
// (queue.Delivery.Last), or of a task whose source waits for its outcome
// (task.HeaderCompletion), is recorded too, for its redelivery only, on
// a subject no producer's key has (doneSubject). A
// crash between the marker and the ack (or a dead letter's term) leaves
// the task queued while a new task with its key is dropped; its next
// delivery finds the marker newer than its message (finishedBefore, one
// direct get for each keyed delivery after the first, and for each first
// one of a message stored before the owned embedded server started, which
// may have forgotten deliveries when it died) and is acked (or
// terminated) without being handed out: the task finished once, as the
// marker, the dead letter and whoever heard its outcome say.

// finishedBefore reports how the task of a message stored at stored,
// now delivered again, finished since: its key's marker is newer than the
// message and records a final outcome. Its settlement stored the marker
// and then was cut short (a process killed between the marker and the
// ack or term, or a server that forgot an ack or term it had when it was
// killed with the process); delivered again, the task would run once
// more and could end in a second, different outcome (dead-lettered, then
// succeeded). No such marker reports false: the delivery is handed out
// as before. A lookup that fails (the stream of finished keys electing a
// leader after the loss of a server, a connection going) is an error:
// the delivery is not handed out, the server delivers it again after
// its AckWait, as when its dead letter cannot be looked for
// (deadLetteredBefore). Both times are the server's.
func (b *Backend) finishedBefore(ctx context.Context, q *queueState, key string, keyed bool, stored time.Time) (task.Outcome, bool, error) {
	lctx, stop := b.serverContext(ctx)
	defer stop()
	m, err := b.lastDone(lctx, q.doneSubject(key, keyed))
	if isMsgNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if !m.Time.After(stored) {
		return "", false, nil
	}
	o := markerOutcome(m.Data)
	if !o.Final() {
		return "", false, nil
	}
	return o, true, nil
}

// doneLookups bounds the marker lookups one Enqueue runs at a time on a
// server without batched direct gets.
const doneLookups = 32

// ensureDoneStream creates or updates the stream of finished keys.
func (b *Backend) ensureDoneStream(ctx context.Context) error {
	s, err := b.setUpStream(ctx, b.doneStreamConfig(), streamKeys{age: "duplicate_window"})
	if errors.Is(err, ErrSettingsDiffer) {
		return err
	}
	if err != nil {
		return fmt.Errorf("jetstream: create stream %q: %w", b.names.doneStream(), replicasProblem(err, b.cfg.Replicas))
	}
	b.done = s
	b.claimWin.Store(int64(s.CachedInfo().Config.Duplicates))
	return nil
}

// doneStreamConfig is the configuration of the stream of finished keys.
func (b *Backend) doneStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              b.names.doneStream(),
		Description:       "plba: keys of finished tasks, for de-duplication across restarts",
		Subjects:          []string{b.names.doneSubjects()},
		Retention:         jetstream.LimitsPolicy,
		Storage:           b.storage(),
		Replicas:          b.cfg.Replicas,
		MaxAge:            b.cfg.DuplicateWindow,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		AllowDirect:       b.directDone(),
	}
}

// directDone reports whether the markers are read with direct gets. Any
// replica answers a direct get, a follower that has not applied the
// latest markers too (after the loss of a server, one catching up): a
// marker stored and acknowledged would read as missing, and a finished
// task would be accepted again or run again. With replicas the markers
// are read from the stream's leader (one request per key); a single
// replica answers direct gets (batched, BENCHMARKS.md) from what it
// stored.
func (b *Backend) directDone() bool { return b.cfg.Replicas == 1 }

// doneSubject is the marker subject of key on q: the prefix and the hex
// of the first 16 bytes of the key's SHA-256, built in one allocation.
// keyed says whose key it is: a producer's, or one Prepare generated
// (task.KeyGenerated; a delivery's keyed, decodeTask). A generated key's
// is the hash of a line break and the key, which no producer's key
// starts with (a key holds no line break: checkTask): a producer's key
// written as a generated one never meets that task's marker (msgIDOf
// keeps their Nats-Msg-Ids apart likewise). A re-driven task's key is
// remembered as a producer's (Redrive).
func (q *queueState) doneSubject(key string, keyed bool) string {
	var sum [sha256.Size]byte
	if keyed {
		sum = sha256.Sum256([]byte(key))
	} else {
		var kb [1 + 64]byte // a generated key is 32 bytes: no allocation
		sum = sha256.Sum256(append(append(kb[:0], '\n'), key...))
	}
	var buf [128]byte
	b := append(buf[:0], q.donePrefix...)
	b = hex.AppendEncode(b, sum[:16])
	return string(b)
}

// maxDoneReason caps the dead-letter reason a marker keeps.
const maxDoneReason = 1 << 10

// doneData is a marker's payload: how the task finished ("succeeded", or
// "dead_lettered" and a line with the reason), or nothing for a task that
// was released (its copy is still queued; the copy's own settlement
// writes the final marker over it).
func doneData(o task.Outcome, reason string) []byte {
	if !o.Final() {
		return nil
	}
	if o == task.Succeeded {
		return doneSucceeded
	}
	if o != task.DeadLettered || reason == "" {
		return []byte(o)
	}
	if len(reason) > maxDoneReason {
		reason = reason[:maxDoneReason]
	}
	return []byte(string(o) + "\n" + reason)
}

// doneSucceeded is the payload of a succeeded task's marker, shared by
// every one (nats.go only reads a message's data).
var doneSucceeded = []byte(task.Succeeded)

// ownMarker reports whether data is a marker's this backend writes (see
// doneData): empty, or a final outcome and, for a dead letter, a line
// with its reason. A message someone else published on a marker's
// subject says nothing about the key.
func ownMarker(data []byte) bool {
	return len(data) == 0 || markerOutcome(data).Final()
}

// markerOutcome is the outcome a marker's data records (its first line;
// see doneData): "" for a released or re-driven task's.
func markerOutcome(data []byte) task.Outcome {
	o, _, _ := strings.Cut(string(data), "\n")
	return task.Outcome(o)
}

// markedOutcome reads the outcome key's marker on q records now (see
// markerOutcome): after a lost claim, the winner's.
func (b *Backend) markedOutcome(ctx context.Context, q *queueState, key string, keyed bool) (task.Outcome, error) {
	m, err := b.lastDone(ctx, q.doneSubject(key, keyed))
	if err != nil {
		return "", err
	}
	return markerOutcome(m.Data), nil
}

// markFinished marks t, a duplicate Enqueue drops, with the outcome its
// key's marker data records, when it records a final one; a marker
// without one (the task was released or re-driven, and its copy is
// queued) marks t held by an unknown task.
func markFinished(t *task.Task, data []byte) {
	o, reason, _ := strings.Cut(string(data), "\n")
	if task.Outcome(o).Final() {
		task.MarkFinished(t, task.Outcome(o), reason)
		return
	}
	task.MarkHeld(t, "")
}

// markDone stores the marker that key (a producer's when keyed:
// doneSubject) finished on q with outcome o (and a dead letter's
// reason), and waits for the server to store it.
// A record no stream answered is published once more after the streams
// were set up again (restore.go).
func (b *Backend) markDone(ctx context.Context, q *queueState, key string, keyed bool, o task.Outcome, reason string) error {
	_, err := b.js.Publish(ctx, q.doneSubject(key, keyed), doneData(o, reason))
	if storeGone(err) {
		if rerr := b.awaitRestore(ctx); rerr != nil {
			return fmt.Errorf("jetstream: record key %q of %q as finished: %w; setting the stream up again: %w", key, q.queue, err, rerr)
		}
		_, err = b.js.Publish(ctx, q.doneSubject(key, keyed), doneData(o, reason))
	}
	if err != nil {
		return fmt.Errorf("jetstream: record key %q of %q as finished: %w", key, q.queue, err)
	}
	return nil
}

// doneMarker returns the stream sequence of key's marker on q (a
// producer's key when keyed: doneSubject; 0 when
// the key has none: never finished, or its marker aged out of the
// window) and whether it records that the task succeeded.
func (b *Backend) doneMarker(ctx context.Context, q *queueState, key string, keyed bool) (seq uint64, succeeded bool, err error) {
	m, err := b.lastDone(ctx, q.doneSubject(key, keyed))
	if isMsgNotFound(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("jetstream: look up key %q of %q: %w", key, q.queue, err)
	}
	return m.Sequence, bytes.Equal(m.Data, doneSucceeded), nil
}

// markQueuedAgain records that key, whose marker was at stream sequence
// prev (0: none), is queued again (a re-driven dead letter): a marker
// without outcome, so that Enqueue drops a duplicate without telling its
// source an outcome the queued task has not had. The marker is written
// only over prev: when the re-driven task finished meanwhile, its own
// marker stands.
func (b *Backend) markQueuedAgain(ctx context.Context, q *queueState, key string, prev uint64) error {
	_, err := b.js.Publish(ctx, q.doneSubject(key, true), doneData(task.Returned, ""), jetstream.WithExpectLastSequencePerSubject(prev))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return nil // a newer marker: the re-driven task finished already
	}
	if err != nil {
		return fmt.Errorf("jetstream: record key %q of %q as queued again: %w", key, q.queue, err)
	}
	return nil
}

// ackAfterRecord runs on nats.go's ack-processing goroutine (or
// keepStores's, restore.go) when the finished-key record of r, the
// delivery of task id, was stored (err nil): it acks r's message. A
// refused record leaves the task unacked. Either way r's lease is no
// longer renewed from then on, and r is forgotten (receipt.acked).
func (b *Backend) ackAfterRecord(r *receipt, id string, err error) {
	r.acked(func() {
		if errors.Is(err, errClaimLost) {
			b.claimsLost.Add(1)
			b.log.Info("jetstream: ack not sent: another delivery of the message settled it first",
				zap.String("queue", r.q.queue), zap.String("task", id), zap.Uint64("seq", r.seq), zap.Uint64("delivered", r.delivered))
			return
		}
		if err != nil {
			b.log.Warn("jetstream: record a finished key (the task is delivered again after its AckWait)",
				zap.String("queue", r.q.queue), zap.String("task", id), zap.Error(err))
			return
		}
		if err := r.msg.Ack(); err != nil {
			b.log.Warn("jetstream: ack (the task is delivered again after its AckWait)",
				zap.String("queue", r.q.queue), zap.String("task", id), zap.Error(err))
			return
		}
		r.forgetEarly() // and the deliveries held back while the ack waited for the record
	})
}

// maxLastFor is how many subjects one batched direct get asks for (the
// server answers at most 1024 messages to one request).
const maxLastFor = 1024

// markDoneThenAck publishes r's claim that its task succeeded (the
// marker that its key finished, claim.go) and sends r's ack once the
// server stored it, without waiting for either (only, when the publish
// window is full, for room in it: see window.go; and, for a claim made
// late, for the marker it reads first). r must be marked acking
// (receipt.ackFollows): its lease is renewed until the ack goes out. A
// claim another delivery of the message won first sends no ack (the
// winner settles the message): the Ack returned before the server
// answered, which is logged and counted (Status.ClaimsLost).
func (b *Backend) markDoneThenAck(ctx context.Context, r *receipt) error {
	m, err := b.claimMsg(ctx, r, task.Succeeded, "")
	if err != nil {
		return err
	}
	if err := b.acquire(ctx); err != nil {
		return fmt.Errorf("jetstream: record key %q of %q as finished: %w", r.del.Task.Key, r.q.queue, err)
	}
	b.pubs.addAck(m, r, r.del.Task.ID)
	if _, err := b.js.PublishMsgAsync(m); err != nil {
		b.releaseWindow() // nats.go forgot it: no callback comes
		b.pubs.take(m)    // unless the error callback had it already
		return fmt.Errorf("jetstream: record key %q of %q as finished: %w", r.del.Task.Key, r.q.queue, err)
	}
	return nil
}

// doneMark is what finished found of one task's key: whether it finished
// within the window, and its marker's data (see doneData).
type doneMark struct {
	done bool
	data []byte
}

// finished reports, for each task, whether its key finished on its queue
// within the duplicate window, and how. Tasks whose key Prepare generated
// are not looked up: no marker is ever stored for them. Servers from 2.11
// on answer a whole batch with one direct get (multi_last, through
// orbit.go's jetstreamext); older ones get one direct get per task,
// doneLookups at a time.
func (b *Backend) finished(ctx context.Context, tasks []*task.Task, qs []*queueState) ([]doneMark, error) {
	out := make([]doneMark, len(tasks))
	keyed := 0
	for _, t := range tasks {
		if !t.KeyGenerated() {
			keyed++
		}
	}
	if keyed == 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	if !b.multiGet || !b.directDone() {
		return out, b.finishedOneByOne(ctx, tasks, qs, out)
	}
	at := make(map[string][]int, keyed) // subject -> tasks
	subjects := make([]string, 0, keyed)
	for i, t := range tasks {
		if t.KeyGenerated() {
			continue
		}
		subj := qs[i].doneSubject(t.Key, true)
		if _, ok := at[subj]; !ok {
			subjects = append(subjects, subj)
		}
		at[subj] = append(at[subj], i)
	}
	for len(subjects) > 0 {
		chunk := subjects[:min(len(subjects), maxLastFor)]
		subjects = subjects[len(chunk):]
		msgs, err := jetstreamext.GetLastMsgsFor(ctx, b.js, b.names.doneStream(), chunk)
		if err != nil {
			return nil, fmt.Errorf("jetstream: look up %d keys: %w", len(chunk), err)
		}
		for m, err := range msgs {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("jetstream: look up %d keys: %w", len(chunk), err)
			}
			for _, i := range at[m.Subject] {
				out[i] = doneMark{done: ownMarker(m.Data), data: m.Data}
			}
		}
	}
	return out, nil
}

// finishedOneByOne is finished for servers without batched direct gets:
// it fills out.
func (b *Backend) finishedOneByOne(ctx context.Context, tasks []*task.Task, qs []*queueState, out []doneMark) error {
	errs := make([]error, len(tasks))
	sem := make(chan struct{}, doneLookups)
	var wg sync.WaitGroup
	for i, t := range tasks {
		if t.KeyGenerated() {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			m, err := b.done.GetLastMsgForSubject(ctx, qs[i].doneSubject(t.Key, true))
			switch {
			case err == nil:
				out[i] = doneMark{done: ownMarker(m.Data), data: m.Data}
			case isMsgNotFound(err):
			default:
				errs[i] = fmt.Errorf("jetstream: look up key %q of %q: %w", t.Key, t.Queue, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
