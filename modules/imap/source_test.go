package imap_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/task"
)

func TestPollEmitsEveryMessageOnceInBatches(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, func(c *imap.Config) { c.BatchSize = 3 })
	appendN(t, b.srv, 1, 7)
	validity, err := b.srv.UIDValidity("INBOX")
	require.NoError(t, err)

	b.run(t)
	waitEmitted(t, b.em, 7)
	b.em.mu.Lock()
	require.Equal(t, []int{3, 3, 1}, b.em.batches)
	b.em.mu.Unlock()

	stored := messages(t, b.srv, "INBOX")
	for i, tk := range b.em.all() {
		m := stored[i]
		require.Equal(t, taskKey("INBOX", fmt.Sprintf("%d@example.com", i+1), m.Raw), tk.Key)
		require.Equal(t, "mail.received", tk.Kind)
		require.Equal(t, "mail", tk.Queue)
		require.Equal(t, m.Raw, tk.Payload, "payload is the raw message")
		require.Equal(t, fmt.Sprint(m.UID), tk.Header(imap.HeaderUID))
		require.Equal(t, fmt.Sprint(validity), tk.Header(imap.HeaderUIDValidity))
		require.Equal(t, "INBOX", tk.Header(imap.HeaderMailbox))
		require.Equal(t, fmt.Sprintf("%d@example.com", i+1), tk.Header(imap.HeaderMessageID))
		require.Equal(t, fmt.Sprint(len(m.Raw)), tk.Header(imap.HeaderSize))
		require.Equal(t, "imap/INBOX", tk.Header(task.HeaderCompletion))
		require.NotEmpty(t, tk.Header(imap.HeaderInternalDate))
	}

	// Mail arriving later is picked up by the next poll, and nothing is
	// emitted twice across many polls.
	appendN(t, b.srv, 8, 2)
	waitEmitted(t, b.em, 9)
	time.Sleep(300 * time.Millisecond) // several more polls
	require.Len(t, b.em.keys(), 9)
	for k, n := range b.em.keys() {
		require.Equal(t, 1, n, "key %s emitted %d times", k, n)
	}

	// Fetching flagged and moved nothing: only Complete does.
	stored = messages(t, b.srv, "INBOX")
	require.Len(t, stored, 9)
	for _, m := range stored {
		require.False(t, m.HasFlag(goimap.FlagSeen), "uid %d flagged before completion", m.UID)
	}
	st := b.src.Status()
	require.True(t, st.Connected)
	require.EqualValues(t, 9, st.Emitted)
	require.Equal(t, 9, st.InFlight)
	require.Equal(t, stored[8].UID, goimap.UID(st.LastUID))
	require.NoError(t, b.src.Check(context.Background()))
}

func TestCompleteFlagsAndMoves(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	appendN(t, b.srv, 1, 3)
	b.run(t)
	waitEmitted(t, b.em, 3)
	tasks := b.em.all()

	complete(t, b.src, tasks[0], task.Succeeded)
	complete(t, b.src, tasks[1], task.DeadLettered)
	complete(t, b.src, tasks[2], task.Retried) // not final: nothing happens

	inbox := messages(t, b.srv, "INBOX")
	require.Len(t, inbox, 1)
	require.Equal(t, "3@example.com", inbox[0].MessageID)
	require.False(t, inbox[0].HasFlag(goimap.FlagSeen))

	processed := messages(t, b.srv, "Processed")
	require.Len(t, processed, 1)
	require.Equal(t, "1@example.com", processed[0].MessageID)
	require.True(t, processed[0].HasFlag(goimap.FlagSeen))

	failed := messages(t, b.srv, "Failed")
	require.Len(t, failed, 1)
	require.Equal(t, "2@example.com", failed[0].MessageID)

	// Idempotent: a second completion of the same tasks changes nothing.
	complete(t, b.src, tasks[0], task.Succeeded)
	complete(t, b.src, tasks[1], task.DeadLettered)
	require.Len(t, messages(t, b.srv, "Processed"), 1)
	require.Len(t, messages(t, b.srv, "Failed"), 1)

	// Counted once each: the second tellings found nothing to do.
	st := b.src.Status()
	require.EqualValues(t, 1, st.CompletedOK)
	require.EqualValues(t, 1, st.CompletedFailed)
	require.EqualValues(t, 2, st.CompletedAgain)
	require.Equal(t, 1, st.InFlight)
}

func TestCompleteWithoutMoveCapabilityAndSeenOnly(t *testing.T) {
	t.Parallel()
	// An IMAP4rev1 server without MOVE: the move falls back to COPY +
	// STORE \Deleted + EXPUNGE.
	b := setup(t, memserver.Options{Caps: goimap.CapSet{goimap.CapIMAP4rev1: {}}}, nil)
	appendN(t, b.srv, 1, 2)
	b.run(t)
	waitEmitted(t, b.em, 2)
	for _, tk := range b.em.all() {
		complete(t, b.src, tk, task.Succeeded)
	}
	require.Empty(t, messages(t, b.srv, "INBOX"))
	require.Len(t, messages(t, b.srv, "Processed"), 2)

	// Seen only (no move): the message stays, flagged, and is not emitted
	// again by a fresh source (UNSEEN criteria).
	b2 := setup(t, memserver.Options{}, func(c *imap.Config) { c.OnSuccess.MoveTo = imap.Ptr("") })
	appendN(t, b2.srv, 1, 2)
	b2.run(t)
	waitEmitted(t, b2.em, 2)
	complete(t, b2.src, b2.em.all()[0], task.Succeeded)
	inbox := messages(t, b2.srv, "INBOX")
	require.Len(t, inbox, 2)
	require.True(t, inbox[0].HasFlag(goimap.FlagSeen))
	require.False(t, inbox[1].HasFlag(goimap.FlagSeen))
	b2.stop()

	fresh := newSource(t, b2.src.Config())
	em := &fakeEmitter{}
	start(t, fresh, em)
	waitEmitted(t, em, 1)
	time.Sleep(200 * time.Millisecond)
	require.Len(t, em.all(), 1)
	require.Equal(t, "2@example.com", em.all()[0].Header(imap.HeaderMessageID))
}

func TestIdleEmitsAppendedMailPromptly(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, func(c *imap.Config) {
		c.Mode = imap.ModeIdle
		c.Reconcile = time.Minute // only the EXISTS push can be fast
		c.PollInterval = time.Minute
	})
	b.run(t)
	require.Eventually(t, func() bool {
		st := b.src.Status()
		return st.Connected && !st.LastPoll.IsZero()
	}, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, imap.ModeIdle, b.src.Status().Mode)
	time.Sleep(100 * time.Millisecond) // let the IDLE command start

	for i := 1; i <= 3; i++ {
		began := time.Now()
		appendN(t, b.srv, i, 1)
		require.Eventually(t, func() bool { return b.em.count() == i }, 2*time.Second, time.Millisecond,
			"mail %d appended while idling not emitted within 2s", i)
		t.Logf("append→emit latency: %s", time.Since(began))
	}
	require.NoError(t, b.src.Check(context.Background()))
}

func TestIdleReconcileFindsMailWithoutPush(t *testing.T) {
	t.Parallel()
	// Mail that arrives while the source is between IDLEs and whose push
	// is lost is still found by the watchdog search.
	b := setup(t, memserver.Options{}, func(c *imap.Config) {
		c.Mode = imap.ModeIdle
		c.Reconcile = 100 * time.Millisecond
	})
	b.run(t)
	appendN(t, b.srv, 1, 5)
	waitEmitted(t, b.em, 5)
	require.Len(t, b.em.keys(), 5)
}

func TestReconnectAfterCutMidFetchLosesNothing(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	proxy := imaptest.NewProxy(t, srv.Addr())
	for i := 1; i <= 20; i++ {
		body := strings.Repeat(fmt.Sprintf("line %d of a longer order mail\n", i), 30)
		_, err := srv.Append("INBOX", imaptest.Message(fmt.Sprintf("%d@example.com", i), "order", body))
		require.NoError(t, err)
	}
	// The server "dies" 3000 bytes into the first body fetch.
	proxy.CutOnce("BODY.PEEK[]", 3000)
	cfg := testConfig(proxy.Host(), proxy.Port())
	cfg.BatchSize = 5
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	_, stop := start(t, src, em)

	require.Eventually(t, func() bool { return len(em.keys()) == 20 }, 10*time.Second, 5*time.Millisecond)
	require.EqualValues(t, 1, proxy.Cuts())
	require.GreaterOrEqual(t, proxy.Accepted(), int64(2))
	st := src.Status()
	require.GreaterOrEqual(t, st.Reconnects, uint64(1))
	require.Empty(t, st.LastError, "reconnected: the status shows no error")

	// A whole-server outage (every connection cut) while idle: the source
	// comes back and picks up mail that arrived meanwhile.
	proxy.DropAll()
	_, err := srv.Append("INBOX", imaptest.Message("21@example.com", "late", "hi"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(em.keys()) == 21 }, 10*time.Second, 5*time.Millisecond)

	// Complete moves every message, including through a cut completion
	// connection.
	for i, tk := range em.all() {
		if i == 10 {
			proxy.DropAll()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
		cancel()
	}
	waitCompletions(t, src)
	stop()
	require.Empty(t, messages(t, srv, "INBOX"))
	require.Len(t, messages(t, srv, "Processed"), 21)
}

func TestUIDValidityChange(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	appendN(t, b.srv, 1, 3)
	b.run(t)
	waitEmitted(t, b.em, 3)
	old := b.em.all()
	oldValidity := b.src.Status().UIDValidity

	// Complete the first one before the rebuild.
	complete(t, b.src, old[0], task.Succeeded)

	// The mailbox is rebuilt: the two unprocessed messages come back with
	// new UIDs under a new UIDVALIDITY, plus a new one.
	require.NoError(t, b.srv.RecreateMailbox("INBOX"))
	appendN(t, b.srv, 2, 3) // 2, 3 (still in flight) and 4 (new)
	b.srv.DropConnections()

	waitEmitted(t, b.em, 4)
	time.Sleep(200 * time.Millisecond)
	require.Len(t, b.em.all(), 4, "in-flight messages are not emitted again")
	st := b.src.Status()
	require.NotEqual(t, oldValidity, st.UIDValidity)
	require.EqualValues(t, 1, st.UIDValidityChanges)
	newTask := b.em.all()[3]
	require.Equal(t, "4@example.com", newTask.Header(imap.HeaderMessageID))
	require.Equal(t, fmt.Sprint(st.UIDValidity), newTask.Header(imap.HeaderUIDValidity))

	// Tasks emitted under the old UIDVALIDITY complete by Message-ID.
	complete(t, b.src, old[1], task.Succeeded)
	complete(t, b.src, old[2], task.DeadLettered)
	complete(t, b.src, newTask, task.Succeeded)
	require.Empty(t, messages(t, b.srv, "INBOX"))
	require.Len(t, messages(t, b.srv, "Processed"), 3)
	require.Len(t, messages(t, b.srv, "Failed"), 1)
}

func TestBackPressureNothingReemittedWhileInFlight(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, func(c *imap.Config) { c.BatchSize = 2 })
	gate := make(chan struct{})
	b.em.gate = gate
	appendN(t, b.srv, 1, 4)
	b.run(t)

	// The first batch blocks in Emit; the source waits instead of piling
	// up work, and many poll intervals pass.
	require.Eventually(t, func() bool { return b.em.callCount() == 1 }, 5*time.Second, 5*time.Millisecond)
	appendN(t, b.srv, 5, 2)
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, 1, b.em.callCount())
	require.NoError(t, b.src.Check(context.Background()), "blocked on a full queue is still ready")

	b.em.mu.Lock()
	b.em.gate = nil
	b.em.mu.Unlock()
	close(gate)
	waitEmitted(t, b.em, 6)

	// A reconnect does not re-emit what is in flight.
	b.srv.DropConnections()
	require.Eventually(t, func() bool { return b.src.Status().Reconnects >= 1 && b.src.Status().Connected }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	require.Len(t, b.em.all(), 6)
	require.Len(t, b.em.keys(), 6)
}

// A message above MaxMessageSize is not fetched: its stand-in, without
// the message, is emitted with the reason, so that it reaches the dead
// letters like any mail that cannot become a task, and the message moves
// to the failed folder once the stand-in is dead-lettered (before, it
// was moved at once and only a log line said why). The stand-in's key is
// the same after a restart.
func TestOversizedMessageIsDeadLetteredWithItsReason(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, func(c *imap.Config) { c.MaxMessageSize = 2000 })
	big := imaptest.Message("big@example.com", "big", strings.Repeat("x", 5000))
	_, err := b.srv.Append("INBOX", big)
	require.NoError(t, err)
	appendN(t, b.srv, 1, 1)
	b.run(t)
	waitEmitted(t, b.em, 2)
	stand := emittedWithID(t, b.em, "big@example.com")
	require.Empty(t, stand.Payload, "the message is not fetched")
	require.Equal(t, fmt.Sprintf("message of %d bytes exceeds max_message_size of 2000 bytes: not fetched", len(big)),
		stand.Header(task.HeaderRejected))
	require.Equal(t, fmt.Sprint(len(big)), stand.Header(imap.HeaderSize))
	require.Equal(t, "1@example.com", emittedWithID(t, b.em, "1@example.com").Header(imap.HeaderMessageID))
	require.EqualValues(t, 1, b.src.Status().Oversized)
	require.ElementsMatch(t, []string{"big@example.com", "1@example.com"}, messageIDs(messages(t, b.srv, "INBOX")),
		"nothing moves before the dead letter")

	// Another process finds the same stand-in (the same key).
	again := newSource(t, b.src.Config())
	em := &fakeEmitter{}
	start(t, again, em)
	waitEmitted(t, em, 2)
	require.Equal(t, stand.Key, emittedWithID(t, em, "big@example.com").Key)

	complete(t, b.src, stand, task.DeadLettered)
	require.Equal(t, []string{"big@example.com"}, messageIDs(messages(t, b.srv, "Failed")))
	require.Equal(t, []string{"1@example.com"}, messageIDs(messages(t, b.srv, "INBOX")))
}

// emittedWithID returns the one task em recorded for the message msgID.
func emittedWithID(t *testing.T, em *fakeEmitter, msgID string) *task.Task {
	t.Helper()
	var found []*task.Task
	for _, tk := range em.all() {
		if tk.Header(imap.HeaderMessageID) == msgID {
			found = append(found, tk)
		}
	}
	require.Len(t, found, 1, "tasks of <%s>", msgID)
	return found[0]
}

func TestMessageWithoutMessageIDIsKeyedByHash(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	raw := imaptest.Message("", "anonymous", "no id")
	_, err := b.srv.Append("INBOX", raw)
	require.NoError(t, err)
	b.run(t)
	waitEmitted(t, b.em, 1)
	tk := b.em.all()[0]
	require.True(t, strings.HasPrefix(tk.Key, "imap:INBOX:sha256:"), tk.Key)
	require.Empty(t, tk.Header(imap.HeaderMessageID))
	complete(t, b.src, tk, task.Succeeded)
	require.Len(t, messages(t, b.srv, "Processed"), 1)
}

func TestAuthFailureStopsRun(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	cfg := testConfig(srv.Host(), srv.Port())
	cfg.Password = "wrong"
	src := newSource(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := src.Run(ctx, &fakeEmitter{})
	require.ErrorIs(t, err, imap.ErrAuth)
	require.NotContains(t, err.Error(), "wrong", "the password is not in the error")
	require.ErrorIs(t, src.Check(ctx), imap.ErrNotReady)
}

func TestMissingMailboxStopsRun(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	cfg := testConfig(srv.Host(), srv.Port())
	cfg.Mailbox = "Orders"
	src := newSource(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.ErrorIs(t, src.Run(ctx, &fakeEmitter{}), imap.ErrMailbox)
}

func TestEmitFailureStopsRunAndLosesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	appendN(t, b.srv, 1, 2)
	b.em.fail = errors.New("queue is gone")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.ErrorIs(t, b.src.Run(ctx, b.em), imap.ErrEmit)

	// The supervisor restarts Run: everything is found again.
	b.em.fail = nil
	b.run(t)
	waitEmitted(t, b.em, 2)
}

func TestServerDownRetriesUntilCancelled(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	cfg := testConfig(srv.Host(), srv.Port())
	require.NoError(t, srv.Close())
	src := newSource(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	require.NoError(t, src.Run(ctx, &fakeEmitter{}), "network errors are retried, not returned")
	st := src.Status()
	require.GreaterOrEqual(t, st.Reconnects, uint64(2))
	require.False(t, st.Connected)
	require.ErrorIs(t, src.Check(context.Background()), imap.ErrNotReady)
}

func TestRunTwiceIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	b.run(t)
	require.Eventually(t, func() bool { return b.src.Status().Connected }, 5*time.Second, 5*time.Millisecond)
	require.ErrorIs(t, b.src.Run(context.Background(), b.em), imap.ErrAlreadyRunning)
}

func TestCompleteAfterCloseIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	require.NoError(t, b.src.Close())
	err := b.src.Complete(context.Background(), &task.Task{Key: "k", Headers: map[string]string{imap.HeaderMessageID: "x"}}, task.Succeeded, "")
	require.ErrorIs(t, err, imap.ErrClosed)
}

func TestDuplicateCopiesAreSettledWithTheirTask(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, func(c *imap.Config) { c.BatchSize = 2 })
	// Three copies of one message (one in a later batch) and another one.
	raw := imaptest.Message("same@example.com", "order", "twice")
	for range 2 {
		_, err := b.srv.Append("INBOX", raw)
		require.NoError(t, err)
	}
	appendN(t, b.srv, 1, 1)
	_, err := b.srv.Append("INBOX", raw)
	require.NoError(t, err)
	b.run(t)
	waitEmitted(t, b.em, 2)
	time.Sleep(200 * time.Millisecond) // several polls: no copy is emitted
	require.Len(t, b.em.all(), 2)
	require.Equal(t, map[string]int{taskKey("INBOX", "same@example.com", raw): 1, taskKey("INBOX", "1@example.com", imaptest.Message("1@example.com", "order 1", "hello")): 1}, b.em.keys())

	for _, tk := range b.em.all() {
		if tk.Key == taskKey("INBOX", "same@example.com", raw) {
			complete(t, b.src, tk, task.Succeeded)
		}
	}
	inbox := messages(t, b.srv, "INBOX")
	require.Len(t, inbox, 1, "every copy is moved with the task")
	require.Equal(t, "1@example.com", inbox[0].MessageID)
	require.Len(t, messages(t, b.srv, "Processed"), 3)
}

func TestConcurrentCompletionsAreBatched(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, func(c *imap.Config) { c.BatchSize = 100 })
	const n = 120
	appendN(t, b.srv, 1, n)
	b.run(t)
	waitEmitted(t, b.em, n)
	tasks := b.em.all()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, tk := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := task.Succeeded
			if i%10 == 0 {
				o = task.DeadLettered
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs <- b.src.Complete(ctx, tk, o, "")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	waitCompletions(t, b.src)
	require.Empty(t, messages(t, b.srv, "INBOX"))
	require.Len(t, messages(t, b.srv, "Processed"), n-n/10)
	failed := messages(t, b.srv, "Failed")
	require.Len(t, failed, n/10)
	for _, m := range failed {
		var i int
		_, err := fmt.Sscanf(m.MessageID, "%d@example.com", &i)
		require.NoError(t, err)
		require.Equal(t, 0, (i-1)%10, "message %d failed by mistake", i)
	}
	st := b.src.Status()
	require.EqualValues(t, n-n/10, st.CompletedOK)
	require.EqualValues(t, n/10, st.CompletedFailed)
	require.Less(t, st.CompletionBatches, uint64(n), "concurrent completions share batches")
	t.Logf("%d completions in %d batches", n, st.CompletionBatches)
}

func TestCloseRefusesWaitingCompletions(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	appendN(t, b.srv, 1, 1)
	b.run(t)
	waitEmitted(t, b.em, 1)
	complete(t, b.src, b.em.all()[0], task.Succeeded) // starts the loop
	require.NoError(t, b.src.Close())
	require.NoError(t, b.src.Close(), "idempotent")
	err := b.src.Complete(context.Background(), b.em.all()[0], task.Succeeded, "")
	require.ErrorIs(t, err, imap.ErrClosed)
}

func TestUncompletedMessageIsEmittedAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, func(c *imap.Config) { c.InFlightTimeout = time.Second })
	appendN(t, b.srv, 1, 3)
	b.run(t)
	waitEmitted(t, b.em, 3)
	first := b.em.all()
	complete(t, b.src, first[0], task.Succeeded)
	complete(t, b.src, first[2], task.DeadLettered)

	// The second task never completes (as if the backend had dropped it):
	// after the timeout its message is emitted again, and only it.
	waitEmitted(t, b.em, 4)
	time.Sleep(150 * time.Millisecond)
	require.Len(t, b.em.all(), 4)
	again := b.em.all()[3]
	require.Equal(t, first[1].Key, again.Key)
	require.Equal(t, first[1].Header(imap.HeaderUID), again.Header(imap.HeaderUID))
	require.GreaterOrEqual(t, b.src.Status().Reemitted, uint64(1))
	complete(t, b.src, again, task.Succeeded)
	require.Empty(t, messages(t, b.srv, "INBOX"))
	require.Zero(t, b.src.Status().InFlight)
}

// A Message-ID longer than a mail header line may be (RFC 5322: 998
// characters) is treated as absent: the task is keyed by the content's
// hash alone and carries no Message-ID header, and its completion finds
// the mail by UID. Kept, a 40 KB id went into the key and a header: on
// JetStream, whose headers are bounded to 64 KiB with room kept for a
// dead letter's, the task and its rejected stand-in were refused, and the
// mailbox retried the mail for ever.
func TestOverlongMessageIDIsTreatedAsAbsent(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	long := strings.Repeat("x", 40<<10) + "@example.test"
	raw := imaptest.Message(long, "long id", "body")
	_, err := b.srv.Append("INBOX", raw)
	require.NoError(t, err)
	b.run(t)
	waitEmitted(t, b.em, 1)
	tk := b.em.all()[0]
	require.True(t, strings.HasPrefix(tk.Key, "imap:INBOX:sha256:"), "key %.80q", tk.Key)
	require.Empty(t, tk.Header(imap.HeaderMessageID))
	complete(t, b.src, tk, task.Succeeded)
	require.Len(t, messages(t, b.srv, "Processed"), 1)
}
