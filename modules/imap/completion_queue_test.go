package imap_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// While the server cannot be reached, Complete still returns nil at once
// (a handled task is done: it never waits for, nor fails with, the mail
// server); the source retries the queued completions with back-off,
// counts and logs each failed batch once, and applies them all once the
// server is back.
func TestCompletionOutlastsAnOutage(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	var down atomic.Bool
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, _ := command(line)
		if down.Load() && name == "LOGIN" {
			c.Reply(tag + " NO [UNAVAILABLE] Server is down\r\n")
			return true
		}
		return false
	}})
	const n = 8
	appendN(t, srv, 1, n)
	src, logs := observedSource(t, testConfig(p.Host(), p.Port()))
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, n)

	down.Store(true)
	p.DropAll()
	began := time.Now()
	for _, tk := range em.all() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
		cancel()
	}
	require.Less(t, time.Since(began), 5*time.Second, "Complete only queues")
	require.Eventually(t, func() bool { return src.Status().CompletionFailures >= 2*n }, 15*time.Second, 5*time.Millisecond,
		"the completions are retried while the server is down")
	require.Len(t, messages(t, srv, "INBOX"), n, "nothing moved while down")
	require.Equal(t, n, src.Status().InFlight, "the messages stay in flight, not emitted again")

	down.Store(false)
	waitCompletions(t, src)
	require.Empty(t, messages(t, srv, "INBOX"))
	require.Len(t, messages(t, srv, "Processed"), n)
	st := src.Status()
	require.EqualValues(t, n, st.CompletedOK)
	require.Zero(t, st.InFlight)
	require.Zero(t, st.CompletionsPending)
	require.Equal(t, n, em.count(), "nothing emitted twice")

	failed := logs.FilterMessage("completion failed: retrying with back-off; the tasks stay done").All()
	require.NotEmpty(t, failed)
	var logged int64
	for _, e := range failed {
		logged += e.ContextMap()["messages"].(int64)
	}
	require.EqualValues(t, st.CompletionFailures, logged, "each failed batch is logged once, with its count")
	require.Less(t, len(failed), int(st.CompletionFailures), "batches, not one log line per message")
}

// tooLargeEmitter refuses, like a queue backend, every task whose payload
// is above max, and records what it accepts.
type tooLargeEmitter struct {
	fakeEmitter
	max int
}

func (e *tooLargeEmitter) Emit(ctx context.Context, tasks ...*task.Task) error {
	for _, t := range tasks {
		if len(t.Payload) > e.max {
			return fmt.Errorf("task of %d bytes: %w", len(t.Payload), queue.ErrTooLarge)
		}
	}
	return e.fakeEmitter.Emit(ctx, tasks...)
}

// A message the queue refuses for good (too large) does not stop the
// mailbox: its stand-in carrying the reason is emitted instead (the pool
// dead-letters it, and its completion moves the message to Failed), the
// other messages of its batch and later mail flow on.
func TestMessageTheQueueRefusesIsRejectedAndMailFlows(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	b.src.SetQueueMaxPayload(8 << 20)
	appendN(t, b.srv, 1, 2)
	big := imaptest.Message("big@example.com", "order", strings.Repeat("x", 9_542_000))
	_, err := b.srv.Append("INBOX", big)
	require.NoError(t, err)
	appendN(t, b.srv, 3, 1)
	em := &tooLargeEmitter{max: 8 << 20}
	start(t, b.src, em)

	waitEmitted(t, &em.fakeEmitter, 4)
	var stand *task.Task
	for _, tk := range em.all() {
		if tk.Header(imap.HeaderMessageID) == "big@example.com" {
			stand = tk
		}
	}
	require.NotNil(t, stand)
	require.Empty(t, stand.Payload)
	require.Equal(t, "message of 9.1 MiB exceeds the queue's max payload of 8 MiB", stand.Header(task.HeaderRejected))
	require.EqualValues(t, 1, b.src.Status().Rejected)

	appendN(t, b.srv, 4, 1) // later mail is still read
	waitEmitted(t, &em.fakeEmitter, 5)

	// The pool dead-letters the stand-in; its completion moves the mail.
	complete(t, b.src, stand, task.DeadLettered)
	failed := messages(t, b.srv, "Failed")
	require.Len(t, failed, 1)
	require.Equal(t, "big@example.com", failed[0].MessageID)
}

func TestCheckQueueLimit(t *testing.T) {
	t.Parallel()
	cfg := imap.Config{MaxMessageSize: 25 << 20}
	err := imap.CheckQueueLimit(cfg, 8<<20)
	require.ErrorIs(t, err, imap.ErrInvalidConfig)
	require.ErrorContains(t, err, "max_message_size: 26214400 (25 MiB) is more than the queue backend can carry: its max payload is 8388608 (8 MiB)")
	cfg.MaxMessageSize = 7 << 20
	require.NoError(t, imap.CheckQueueLimit(cfg, 8<<20))
	require.NoError(t, imap.CheckQueueLimit(cfg, 0), "no limit known")
}

// Concurrent completions never block on each other: many workers
// completing at once are applied in few batches.
func TestCompleteDoesNotWaitForTheServer(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	release := make(chan struct{})
	var once sync.Once
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		if _, name, _ := command(line); name == "UID MOVE" {
			select { // the server takes its time to move
			case <-release:
			case <-c.Closed():
			}
		}
		return false
	}})
	appendN(t, srv, 1, 3)
	src := newSource(t, testConfig(p.Host(), p.Port()))
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 3)
	defer once.Do(func() { close(release) })
	for _, tk := range em.all() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
		cancel()
	}
	require.Len(t, messages(t, srv, "INBOX"), 3, "queued, the move is held by the server")
	once.Do(func() { close(release) })
	waitCompletions(t, src)
	require.Len(t, messages(t, srv, "Processed"), 3)
}

// A message handled but left in the mailbox (here the server answers OK
// to the MOVE without moving anything) is found by the next reconcile
// pass, although the cursor is past it, and emitted again to finish it.
func TestReconcileFinishesHandledButUnmovedMail(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	var fake atomic.Bool
	fake.Store(true)
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, _ := command(line)
		if fake.Load() && name == "UID MOVE" {
			c.Reply(tag + " OK Move completed (not really)\r\n")
			return true
		}
		return false
	}})
	appendN(t, srv, 1, 2)
	src := newSource(t, testConfig(p.Host(), p.Port())) // Reconcile 300ms
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 2)
	for _, tk := range em.all() {
		complete(t, src, tk, task.Succeeded)
	}
	require.Len(t, messages(t, srv, "INBOX"), 2, "the server did not move them")
	require.Zero(t, src.Status().InFlight)

	waitEmitted(t, em, 4) // the reconcile pass emits both again
	require.EqualValues(t, 2, src.Status().Reconciled)
	fake.Store(false)
	for _, tk := range em.all()[2:] {
		complete(t, src, tk, task.Succeeded)
	}
	require.Empty(t, messages(t, srv, "INBOX"))
	require.Len(t, messages(t, srv, "Processed"), 2)
}

// A server's NO for one message of a batch is narrowed down to it: the
// others are moved at once, and it is retried on its own with back-off
// (counted) until the server takes it.
func TestRefusedCompletionIsNarrowedAndRetried(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	var refuse atomic.Bool
	refuse.Store(true)
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if set, _, _ := strings.Cut(rest, " "); refuse.Load() && name == "UID MOVE" && uidSetHas(set, 3) {
			c.Reply(tag + " NO [CANNOT] Cannot move this one\r\n")
			return true
		}
		return false
	}})
	appendN(t, srv, 1, 5)
	src := newSource(t, testConfig(p.Host(), p.Port()))
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 5)
	for _, tk := range em.all() {
		require.NoError(t, src.Complete(context.Background(), tk, task.Succeeded, ""))
	}
	require.Eventually(t, func() bool {
		msgs, err := srv.Messages(context.Background(), "Processed") // fails until the folder exists
		return err == nil && len(msgs) == 4
	}, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return src.Status().CompletionFailures >= 2 }, 10*time.Second, 5*time.Millisecond,
		"the refused one is retried")
	inbox := messages(t, srv, "INBOX")
	require.Len(t, inbox, 1)
	require.Equal(t, "3@example.com", inbox[0].MessageID)

	refuse.Store(false)
	waitCompletions(t, src)
	require.Empty(t, messages(t, srv, "INBOX"))
	require.Len(t, messages(t, srv, "Processed"), 5)
}

// The sequence after a crash between the ack and the move: the task is
// done (acked), its completion is still queued when the source goes away;
// the mail stays in the INBOX, a new source (the restarted process) emits
// it again under the same key, so the idempotent handler finds its work
// done, and that completion moves it.
func TestCompletionLostWithTheProcessIsAppliedAfterRestart(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, _ := command(line)
		if name == "UID MOVE" || name == "UID STORE" {
			c.Reply(tag + " NO [UNAVAILABLE] Try again later\r\n")
			return true
		}
		return false
	}})
	appendN(t, srv, 1, 1)
	first := newSource(t, testConfig(p.Host(), p.Port()))
	em1 := &fakeEmitter{}
	_, stop1 := start(t, first, em1)
	waitEmitted(t, em1, 1)
	require.NoError(t, first.Complete(context.Background(), em1.all()[0], task.Succeeded, "")) // acked
	require.Eventually(t, func() bool { return first.Status().CompletionFailures > 0 }, 10*time.Second, 5*time.Millisecond)
	stop1()
	require.NoError(t, first.Close()) // the process ends, the completion unapplied
	require.Len(t, messages(t, srv, "INBOX"), 1)

	second := newSource(t, testConfig(srv.Host(), srv.Port())) // the restarted process
	em2 := &fakeEmitter{}
	start(t, second, em2)
	waitEmitted(t, em2, 1)
	require.Equal(t, em1.all()[0].Key, em2.all()[0].Key, "emitted again under the same key: the handler is idempotent per key")
	complete(t, second, em2.all()[0], task.Succeeded)
	require.Empty(t, messages(t, srv, "INBOX"))
	require.Len(t, messages(t, srv, "Processed"), 1)
}

// A server that logs the completion connection in and then never answers
// its SELECT does not hold the completion loop forever: the batch's
// deadline cuts the connection, so Close returns within its drain time
// and the completion is applied on a fresh connection.
func TestCompletionSelectLeftUnansweredDoesNotHangClose(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	held := make(chan struct{})
	var once sync.Once
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		if _, name, _ := command(line); name == "SELECT" && c.N() == 2 { // the completion connection's first
			once.Do(func() { close(held) })
			return true // never answered
		}
		return false
	}})
	appendN(t, srv, 1, 1)
	src, err := imap.NewSource(testConfig(p.Host(), p.Port()), nil)
	require.NoError(t, err)
	em := &fakeEmitter{}
	_, stop := start(t, src, em)
	waitEmitted(t, em, 1)
	stop() // the watching connection is done; the completion opens the second
	require.NoError(t, src.Complete(context.Background(), em.all()[0], task.Succeeded, ""))
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the completion never selected the mailbox")
	}

	closed := make(chan error, 1)
	go func() { closed <- src.Close() }() // owned by the test: waited for below
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		p.Close() // ends the held SELECT, and so Close
		<-closed
		t.Fatal("Close still waits for a SELECT the server never answers")
	}
	require.Empty(t, messages(t, srv, "INBOX"))
	require.Len(t, messages(t, srv, "Processed"), 1, "the drain applied the completion on a fresh connection")
}
