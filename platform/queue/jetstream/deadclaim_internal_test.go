package jetstream

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// redriveClaimedJS is a JetStream API that runs meanwhile, once armed,
// right after a re-drive's claim of a dead letter was stored: what
// another call does between a Redrive's start on a dead letter and its
// copy.
type redriveClaimedJS struct {
	jetstream.JetStream
	mu        sync.Mutex
	meanwhile func()
}

func (s *redriveClaimedJS) Publish(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ack, err := s.JetStream.Publish(ctx, subject, data, opts...)
	s.mu.Lock()
	f := s.meanwhile
	if strings.Contains(subject, ".claim-") && strings.HasPrefix(string(data), claimRedrive+"\n") {
		s.meanwhile = nil
	} else {
		f = nil
	}
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return ack, err
}

// TestPurgeDuringARedriveDoesNotCountTheRedrivenDeadLetter: an operator
// purges a dead letter while another re-drives it: the purge reads the
// work stream before the re-drive stores the task's copy, and deletes
// the dead letter before the re-drive does. The task is queued again:
// the purge does not count it purged (it names it, re-driven), the
// re-drive counts it, and the task runs once. Both counted it (the purge
// deleted the dead letter, the re-drive's delete found it gone), so that
// the operator was told "purged" of a task that runs.
func TestPurgeDuringARedriveDoesNotCountTheRedrivenDeadLetter(t *testing.T) {
	t.Parallel()
	onEachTestServer(t, Config{AckWait: 5 * time.Second}, func(t *testing.T, cfg Config) {
		ctx := t.Context()
		b, err := New(Params{Config: cfg})
		require.NoError(t, err)
		js := &redriveClaimedJS{}
		b.faultJS = func(inner jetstream.JetStream) jetstream.JetStream {
			js.JetStream = inner
			return js
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = b.Close(cctx)
		})
		require.NoError(t, b.Start(ctx))
		const qn = "purge-during-redrive"
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Key: "k1", Kind: "k", Queue: qn}))
		d := leaseOne(t, b, qn)
		require.NoError(t, b.DeadLetter(ctx, d, "boom"))

		var purged int
		var purgeErr error
		js.mu.Lock()
		js.meanwhile = func() { purged, purgeErr = b.Purge(ctx, qn, "t1") }
		js.mu.Unlock()
		redriven, err := b.Redrive(ctx, qn, "t1")
		require.NoError(t, err)
		require.Equal(t, 1, redriven, "its copy stored: re-driven")
		require.Equal(t, 0, purged, "re-driven: not purged")
		require.ErrorIs(t, purgeErr, errRedriveBegun)
		left, stop := leftAndStop(purgeErr)
		require.Equal(t, []string{"t1"}, left, "reported with its own queue.DeadLetterError")
		require.NoError(t, stop)

		dead, err := b.ListDead(ctx, qn, 0)
		require.NoError(t, err)
		require.Empty(t, dead)
		d = leaseOne(t, b, qn)
		require.Equal(t, "t1", d.Task.ID)
		require.NoError(t, b.Ack(ctx, d))
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = b.Lease(lctx, qn, 1, time.Second)
		require.ErrorIs(t, err, context.DeadlineExceeded, "one copy queued")
	})
}

// markerFailsJS is a JetStream API whose publishes on subject fail once
// armed, as during an outage.
type markerFailsJS struct {
	jetstream.JetStream
	subject string
	armed   atomic.Bool
}

func (s *markerFailsJS) Publish(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if s.armed.Load() && subject == s.subject {
		return nil, errors.New("outage")
	}
	return s.JetStream.Publish(ctx, subject, data, opts...)
}

// TestPurgeOfADeadLetterBesideItsQueuedCopyDoesNotCountIt: a re-drive
// stored a dead letter's copy and then failed (its key's queued-again
// marker refused: an outage), leaving the dead letter beside its queued
// copy. A purge of it then does not count it purged (it names it,
// re-driven): the task is queued and runs, once, and its delivery
// deletes the dead letter. The purge counted it purged while the copy
// still ran (dropRedriven finding the dead letter gone).
func TestPurgeOfADeadLetterBesideItsQueuedCopyDoesNotCountIt(t *testing.T) {
	t.Parallel()
	onEachTestServer(t, Config{AckWait: 5 * time.Second}, func(t *testing.T, cfg Config) {
		ctx := t.Context()
		b, err := New(Params{Config: cfg})
		require.NoError(t, err)
		const qn = "purge-beside-copy"
		qnames, err := b.names.forQueue(qn)
		require.NoError(t, err)
		js := &markerFailsJS{subject: (&queueState{queueNames: qnames}).doneSubject("k1", true)}
		b.faultJS = func(inner jetstream.JetStream) jetstream.JetStream {
			js.JetStream = inner
			return js
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = b.Close(cctx)
		})
		require.NoError(t, b.Start(ctx))
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Key: "k1", Kind: "k", Queue: qn}))
		d := leaseOne(t, b, qn)
		require.NoError(t, b.DeadLetter(ctx, d, "boom"))

		js.armed.Store(true)
		_, err = b.Redrive(ctx, qn, "t1")
		require.ErrorContains(t, err, "outage", "the re-drive stopped after its copy")
		dead, err := b.ListDead(ctx, qn, 0)
		require.NoError(t, err)
		require.Len(t, dead, 1, "the dead letter beside its copy")

		purged, err := b.Purge(ctx, qn, "t1")
		require.Equal(t, 0, purged, "its task queued again: not purged")
		require.True(t, errors.Is(err, errTaskQueued) || errors.Is(err, errRedriveBegun), "named re-driven: %v", err)
		left, stop := leftAndStop(err)
		require.Equal(t, []string{"t1"}, left, "reported with its own queue.DeadLetterError")
		require.NoError(t, stop)

		d = leaseOne(t, b, qn)
		require.Equal(t, "t1", d.Task.ID)
		require.NoError(t, b.Ack(ctx, d))
		dead, err = b.ListDead(ctx, qn, 0)
		require.NoError(t, err)
		require.Empty(t, dead, "deleted by its copy's delivery")
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = b.Lease(lctx, qn, 1, time.Second)
		require.ErrorIs(t, err, context.DeadlineExceeded, "one copy queued")
	})
}

// TestRedriveAgainPastTheWindowFindsTheQueuedCopy: a re-drive stored a
// dead letter's copy and then failed (its key's queued-again marker
// refused: an outage), leaving the dead letter beside its copy. Re-driven
// again once the duplicate window has passed (the copy's Nats-Msg-Id
// forgotten), before the copy is delivered (a paused pool), it finds
// the copy queued: it queues nothing, counts nothing, and deletes the
// dead letter; the task runs once. It queued a second copy, and the
// task ran twice.
func TestRedriveAgainPastTheWindowFindsTheQueuedCopy(t *testing.T) {
	t.Parallel()
	onEachTestServer(t, Config{AckWait: 5 * time.Second, DuplicateWindow: time.Second}, func(t *testing.T, cfg Config) {
		ctx := t.Context()
		b, err := New(Params{Config: cfg})
		require.NoError(t, err)
		const qn = "redrive-past-window"
		qnames, err := b.names.forQueue(qn)
		require.NoError(t, err)
		js := &markerFailsJS{subject: (&queueState{queueNames: qnames}).doneSubject("k1", true)}
		b.faultJS = func(inner jetstream.JetStream) jetstream.JetStream {
			js.JetStream = inner
			return js
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = b.Close(cctx)
		})
		require.NoError(t, b.Start(ctx))
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Key: "k1", Kind: "k", Queue: qn}))
		d := leaseOne(t, b, qn)
		require.NoError(t, b.DeadLetter(ctx, d, "boom"))

		js.armed.Store(true)
		_, err = b.Redrive(ctx, qn, "t1")
		require.ErrorContains(t, err, "outage", "the re-drive stopped after its copy")
		js.armed.Store(false)

		time.Sleep(2 * time.Second) // past the duplicate window
		n, err := b.Redrive(ctx, qn, "t1")
		require.NoError(t, err)
		require.Equal(t, 0, n, "its copy queued already: nothing re-driven")
		dead, err := b.ListDead(ctx, qn, 0)
		require.NoError(t, err)
		require.Empty(t, dead, "the dead letter beside its copy deleted")

		d = leaseOne(t, b, qn)
		require.Equal(t, "t1", d.Task.ID)
		require.NoError(t, b.Ack(ctx, d))
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = b.Lease(lctx, qn, 1, time.Second)
		require.ErrorIs(t, err, context.DeadlineExceeded, "one copy queued")
	})
}

// TestPurgePastTheWindowOfADeadLetterBesideItsQueuedCopyDoesNotCountIt:
// a re-drive stored a dead letter's copy and then failed (its key's
// queued-again marker refused: an outage), leaving the dead letter beside
// its copy. Purged once the duplicate window has passed (the re-drive's
// claim gone), before the copy is delivered, the dead letter is not
// counted purged (it is named: its task queued again); the task runs
// once and its delivery deletes the dead letter. The purge counted it
// purged while the copy still ran.
func TestPurgePastTheWindowOfADeadLetterBesideItsQueuedCopyDoesNotCountIt(t *testing.T) {
	t.Parallel()
	onEachTestServer(t, Config{AckWait: 5 * time.Second, DuplicateWindow: time.Second}, func(t *testing.T, cfg Config) {
		ctx := t.Context()
		b, err := New(Params{Config: cfg})
		require.NoError(t, err)
		const qn = "purge-past-window"
		qnames, err := b.names.forQueue(qn)
		require.NoError(t, err)
		js := &markerFailsJS{subject: (&queueState{queueNames: qnames}).doneSubject("k1", true)}
		b.faultJS = func(inner jetstream.JetStream) jetstream.JetStream {
			js.JetStream = inner
			return js
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = b.Close(cctx)
		})
		require.NoError(t, b.Start(ctx))
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Key: "k1", Kind: "k", Queue: qn}))
		d := leaseOne(t, b, qn)
		require.NoError(t, b.DeadLetter(ctx, d, "boom"))

		js.armed.Store(true)
		_, err = b.Redrive(ctx, qn, "t1")
		require.ErrorContains(t, err, "outage", "the re-drive stopped after its copy")
		js.armed.Store(false)

		time.Sleep(2 * time.Second) // past the duplicate window
		purged, err := b.Purge(ctx, qn, "t1")
		require.Equal(t, 0, purged, "its task queued again: not purged")
		require.ErrorIs(t, err, errTaskQueued)
		left, stop := leftAndStop(err)
		require.Equal(t, []string{"t1"}, left, "reported with its own queue.DeadLetterError")
		require.NoError(t, stop)

		d = leaseOne(t, b, qn)
		require.Equal(t, "t1", d.Task.ID)
		require.NoError(t, b.Ack(ctx, d))
		dead, err := b.ListDead(ctx, qn, 0)
		require.NoError(t, err)
		require.Empty(t, dead, "deleted by its copy's delivery")
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = b.Lease(lctx, qn, 1, time.Second)
		require.ErrorIs(t, err, context.DeadlineExceeded, "one copy queued")
	})
}
