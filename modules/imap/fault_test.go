package imap_test

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/task"
)

// observedSource is newSource with the source's warnings recorded.
func observedSource(t *testing.T, cfg imap.Config) (*imap.Source, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.WarnLevel)
	src, err := imap.NewSource(cfg, zap.New(core))
	require.NoError(t, err)
	t.Cleanup(func() { _ = src.Close() })
	return src, logs
}

// After a UIDVALIDITY change the in-flight message is known only by the
// copy the rescan found under its new UID. If its task then vanishes
// (never completed within InFlightTimeout), the message is emitted again,
// under the new UIDVALIDITY, as the log says.
func TestStaleTaskIsEmittedAgainAfterUIDValidityChange(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, func(c *imap.Config) { c.InFlightTimeout = time.Second })
	appendN(t, b.srv, 1, 1)
	b.run(t)
	waitEmitted(t, b.em, 1)
	first := b.em.all()[0]
	require.NoError(t, b.srv.RecreateMailbox("INBOX"))
	appendN(t, b.srv, 1, 1) // the same mail under a new UIDVALIDITY
	validity, err := b.srv.UIDValidity("INBOX")
	require.NoError(t, err)
	b.srv.DropConnections()

	// The task never completes.
	require.Eventually(t, func() bool {
		for _, tk := range b.em.all()[1:] {
			if tk.Header(imap.HeaderUIDValidity) == fmt.Sprint(validity) {
				require.Equal(t, first.Key, tk.Key)
				return true
			}
		}
		return false
	}, 15*time.Second, 10*time.Millisecond, "the uncompleted message is emitted again")
	require.GreaterOrEqual(t, b.src.Status().Reemitted, uint64(1))
}

// One message the server refuses to return (FETCH answered NO, as
// Exchange does for a message it cannot convert to RFC 822) while it
// returns the others of its batch is held without failing the session,
// the mail after it flowing, and given up once refused so in
// RefusedSessionsBeforeSetAside sessions over at least RefusalSpan: its
// stand-in is emitted (no content, the server's answer as the reason, its
// UID and Message-ID), counted, logged at warn with its UID, and its dead
// letter's completion moves it to the failed folder. It was set aside,
// left in the INBOX where no dead letter showed it.
func TestRefusedMessageIsDeadLetteredAndLaterMailFlows(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 5) // UID 1 is the one the server refuses
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || !uidSetHas(strings.Fields(rest)[0], 1) {
			return false
		}
		c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
		return true
	}})
	src, logs := observedSource(t, testConfig(p.Host(), p.Port()))
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 5)
	var standIn *task.Task
	for i, tk := range em.all() {
		if i == 4 {
			require.Equal(t, "1@example.com", tk.Header(imap.HeaderMessageID), "held, given up last")
			standIn = tk
			continue
		}
		require.Equal(t, fmt.Sprintf("%d@example.com", i+2), tk.Header(imap.HeaderMessageID))
		require.Empty(t, tk.Header(task.HeaderRejected))
	}
	require.Nil(t, standIn.Payload, "a stand-in, without the content")
	require.Equal(t, "1", standIn.Header(imap.HeaderUID))
	require.NotEmpty(t, standIn.Header(imap.HeaderSize), "the size the server reported")
	reason := standIn.Header(task.HeaderRejected)
	require.Contains(t, reason, "refuses to return the message")
	require.Contains(t, reason, "could not be converted to an RFC-822 compatible format", "what the server said")
	require.Regexp(t, `refused in [3-9][0-9]* sessions while it returned other mail`, reason)
	st := src.Status()
	require.EqualValues(t, 1, st.Refused)
	require.Zero(t, st.Oversized)
	require.Zero(t, st.Reconnects, "a refused message does not fail the session")
	warned := logs.FilterFieldKey("uid").FilterMessageSnippet("stand-in is dead-lettered").All()
	require.Len(t, warned, 1)
	require.EqualValues(t, 1, warned[0].ContextMap()["uid"])

	// Its dead letter moves it to the failed folder, untouched otherwise.
	complete(t, src, standIn, task.DeadLettered)
	require.Equal(t, []string{"2@example.com", "3@example.com", "4@example.com", "5@example.com"}, messageIDs(messages(t, srv, "INBOX")))
	failed := messages(t, srv, "Failed")
	require.Equal(t, []string{"1@example.com"}, messageIDs(failed))
	require.False(t, failed[0].HasFlag(goimap.FlagSeen))
	require.EqualValues(t, 1, src.Status().CompletedFailed)
}

// The mail the source leaves in the mailbox on purpose stays left when
// the cursor moves back below it: here a message the server refuses and
// one dead-lettered without a failed folder (both left in place),
// above a message whose task never completes, which the reaper emits
// again after InFlightTimeout by scanning again from it. The scan from
// there fetched the refused message again and gave it up again (one
// message counted refused once per reap, Status.Refused growing without
// bound), and emitted the dead letter's mail again: a second task, a
// second dead letter, of a mail whose outcome was settled. (The refused
// message's stand-in is dead-lettered too: without a failed folder its
// mail stays in place, and is fetched no more.)
func TestMailLeftInPlaceIsNotEmittedAgainWhenTheCursorMovesBack(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3) // UID 1 never completes; the server refuses UID 2; UID 3 is dead-lettered
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || !uidSetHas(strings.Fields(rest)[0], 2) {
			return false
		}
		c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.InFlightTimeout = 200 * time.Millisecond
	cfg.OnFailure.MoveTo = imap.Ptr("")
	src, logs := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 3)
	byUID := map[string]*task.Task{}
	for _, tk := range em.all() {
		byUID[tk.Header(imap.HeaderUID)] = tk
	}
	require.Contains(t, byUID, "3")
	require.NotEmpty(t, byUID["2"].Header(task.HeaderRejected), "the refused message's stand-in")
	complete(t, src, byUID["2"], task.DeadLettered)
	complete(t, src, byUID["3"], task.DeadLettered)

	require.Eventually(t, func() bool { return src.Status().Reemitted >= 3 }, 10*time.Second, 10*time.Millisecond,
		"the task of UID 1 never completes: it is emitted again and again")
	time.Sleep(100 * time.Millisecond) // the scan that follows the last reap
	perUID := map[string]int{}
	for _, tk := range em.all() {
		perUID[tk.Header(imap.HeaderUID)]++
	}
	require.GreaterOrEqual(t, perUID["1"], 3)
	require.Equal(t, 1, perUID["3"], "the dead letter's mail is not emitted again")
	require.Equal(t, 1, perUID["2"], "the refused message is not fetched again")
	require.EqualValues(t, 1, src.Status().Refused, "one message refused, counted once")
	require.Len(t, logs.FilterMessageSnippet("refuses to return").All(), 1)
	require.Len(t, messages(t, srv, "INBOX"), 3, "all left in the mailbox")
}

// A server that fails as a whole for a moment (NO [SERVERBUG] to every
// FETCH, of the metadata or of the bodies) skips no mail: nothing is
// given up, the sessions fail and are retried with back-off, and once the
// server recovers every message is emitted (a refusal of every message
// asked for is never counted against them: see
// TestServerBugForSecondsGivesUpNoMail).
func TestTransientFetchFailureSkipsNoMail(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		match func(rest string) bool
	}{
		{"metadata", func(rest string) bool { return !strings.Contains(rest, "BODY.PEEK[]") }},
		{"body", func(rest string) bool { return strings.Contains(rest, "BODY.PEEK[]") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := imaptest.NewServer(t, memserver.Options{})
			appendN(t, srv, 1, 3)
			const brokenSessions = imap.RefusedSessionsBeforeSetAside - 1
			var mu sync.Mutex
			broken := map[int64]bool{} // the connections the server failed
			var refusals atomic.Int32
			p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
				tag, name, rest := command(line)
				if name != "UID FETCH" || !tt.match(rest) {
					return false
				}
				mu.Lock()
				if !broken[c.N()] && len(broken) == brokenSessions {
					mu.Unlock()
					return false // the server recovered
				}
				broken[c.N()] = true
				mu.Unlock()
				refusals.Add(1)
				c.Reply(tag + " NO [SERVERBUG] Internal error occurred\r\n")
				return true
			}})
			src, logs := observedSource(t, testConfig(p.Host(), p.Port()))
			em := &fakeEmitter{}
			start(t, src, em)

			waitEmitted(t, em, 3)
			st := src.Status()
			require.Zero(t, st.Refused, "nothing given up")
			require.EqualValues(t, brokenSessions, st.Reconnects, "each broken session failed and was retried")
			require.Empty(t, st.LastError, "reconnected: the status shows no error")
			require.Contains(t, lastLostError(logs), "SERVERBUG")
			require.Contains(t, lastLostError(logs), "none given up")
			// Each broken session asked for the batch, then for each message.
			require.EqualValues(t, brokenSessions*4, refusals.Load())
			require.Len(t, logs.FilterMessageSnippet("retrying, giving none up for that").All(), brokenSessions)
			require.Empty(t, logs.FilterMessageSnippet("stand-in is dead-lettered").All())

			appendN(t, srv, 4, 1) // later mail flows too
			waitEmitted(t, em, 4)
			keys := em.keys()
			require.Len(t, keys, 4, "each mail emitted once")
			for i, tk := range em.all() {
				require.Equal(t, fmt.Sprintf("%d@example.com", i+1), tk.Header(imap.HeaderMessageID))
			}
			require.Zero(t, src.Status().Refused)
		})
	}
}

// A message the server refuses alone (the only one in the mailbox, so no
// other message shows that the server works) is no evidence about it: it
// is not given up however many sessions, over however long, refuse it;
// the session fails and is retried. It was given up after three sessions
// over Reconnect.Max, as a server failing as a whole would have had it.
// Once later mail comes, the server returning it while it refuses the
// message is evidence: the later mail flows at once, and the message,
// held meanwhile, is given up once refused so in
// RefusedSessionsBeforeSetAside sessions over at least RefusalSpan: its
// stand-in, with the server's answer as the reason, is dead-lettered, and
// moves it to the failed folder; it is not asked for again.
func TestMessageRefusedAloneIsDeadLetteredAfterRetries(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 1) // UID 1, which the server refuses
	var asked atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || !uidSetHas(strings.Fields(rest)[0], 1) {
			return false
		}
		asked.Add(1)
		c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	src, logs := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	began := time.Now()
	require.Eventually(t, func() bool {
		return asked.Load() > 2*imap.RefusedSessionsBeforeSetAside && time.Since(began) > 3*cfg.RefusalSpan
	}, 15*time.Second, 5*time.Millisecond)
	st := src.Status()
	require.Zero(t, st.Refused, "alone in its batch: no evidence about it")
	require.Zero(t, em.count())
	require.NotZero(t, st.Reconnects, "the sessions fail and are retried")

	appendN(t, srv, 2, 2)
	waitEmitted(t, em, 3)
	for i, tk := range em.all()[:2] {
		require.Equal(t, fmt.Sprintf("%d@example.com", i+2), tk.Header(imap.HeaderMessageID), "later mail first: the refused one held")
		require.Empty(t, tk.Header(task.HeaderRejected))
	}
	standIn := em.all()[2]
	require.Nil(t, standIn.Payload)
	require.Equal(t, "1@example.com", standIn.Header(imap.HeaderMessageID))
	reason := standIn.Header(task.HeaderRejected)
	require.Contains(t, reason, "could not be converted to an RFC-822 compatible format")
	require.Contains(t, reason, "while it returned other mail")
	st = src.Status()
	require.EqualValues(t, 1, st.Refused)
	held := logs.FilterMessageSnippet("held, asked for again").All()
	require.GreaterOrEqual(t, len(held), imap.RefusedSessionsBeforeSetAside-1)
	warned := logs.FilterFieldKey("uid").FilterMessageSnippet("stand-in is dead-lettered").All()
	require.Len(t, warned, 1)
	require.EqualValues(t, 1, warned[0].ContextMap()["uid"])

	n := asked.Load()
	complete(t, src, standIn, task.DeadLettered)
	require.Equal(t, []string{"1@example.com"}, messageIDs(messages(t, srv, "Failed")))
	require.Equal(t, []string{"2@example.com", "3@example.com"}, messageIDs(messages(t, srv, "INBOX")))
	time.Sleep(5 * cfg.PollInterval) // polls that would ask again
	require.Equal(t, n, asked.Load(), "not asked for again")
	require.EqualValues(t, 1, src.Status().Refused)
}

// A session that fails after selecting the mailbox, the same way each
// time, does not reset the reconnect back-off: the delays grow instead of
// hammering the server at the initial delay forever.
func TestRepeatedSessionFailureBacksOff(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, _ := command(line)
		if name != "UID SEARCH" {
			return false
		}
		c.Reply(tag + " NO [SERVERBUG] Internal error\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.Reconnect = imap.Backoff{Initial: 20 * time.Millisecond, Max: 10 * time.Second}
	src, logs := observedSource(t, cfg)
	start(t, src, &fakeEmitter{})

	lost := func() []observer.LoggedEntry {
		return logs.FilterMessage("imap connection lost, reconnecting").All()
	}
	require.Eventually(t, func() bool { return len(lost()) >= 4 }, 15*time.Second, 5*time.Millisecond)
	delay := lost()[3].ContextMap()["in"].(time.Duration)
	require.Greater(t, delay, cfg.Reconnect.Initial, "the 4th delay is 4-8× the initial one, not reset to it")
}

// A server that stops answering while the TCP connection stays up (here:
// from the watching connection's second search on) no longer stalls the
// source: CommandTimeout closes the connection and the source reconnects.
func TestHungServerIsCutByCommandTimeout(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	frozen := make(chan struct{})
	var searches atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		if _, name, _ := command(line); c.N() == 1 && name == "UID SEARCH" && searches.Add(1) == 2 {
			c.Mute()
			close(frozen)
		}
		return false
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.CommandTimeout = 300 * time.Millisecond
	src, logs := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	select {
	case <-frozen:
	case <-time.After(10 * time.Second):
		t.Fatal("the source never searched twice")
	}

	appendN(t, srv, 1, 1)
	waitEmitted(t, em, 1)
	st := src.Status()
	require.GreaterOrEqual(t, st.Reconnects, uint64(1))
	require.Empty(t, st.LastError, "reconnected: the status shows no error")
	require.Contains(t, lastLostError(logs), "command_timeout")
	require.GreaterOrEqual(t, p.Accepted(), int64(2))
}

// IDLE lasts longer than CommandTimeout by design: the deadline bounds
// starting and ending an IDLE, not the wait in it.
func TestIdleOutlastsCommandTimeout(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	idling := make(chan struct{}, 1)
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		if _, name, _ := command(line); name == "IDLE" {
			select {
			case idling <- struct{}{}:
			default:
			}
		}
		return false
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.Mode, cfg.Reconcile, cfg.PollInterval = imap.ModeIdle, time.Minute, time.Minute
	cfg.CommandTimeout = 500 * time.Millisecond
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	select {
	case <-idling:
	case <-time.After(10 * time.Second):
		t.Fatal("the source never idled")
	}

	// A deadline on the wait would fire within 500ms; idle three times
	// that before any mail arrives.
	time.Sleep(3 * cfg.CommandTimeout)
	appendN(t, srv, 1, 1)
	waitEmitted(t, em, 1)
	require.Zero(t, src.Status().Reconnects)
	require.EqualValues(t, 1, p.Accepted())
}

// A temporary refusal of LOGIN (NO [UNAVAILABLE]) or SELECT (NO [INUSE])
// is retried with back-off instead of ending Run as bad credentials or a
// missing mailbox would.
func TestTemporaryLoginAndSelectRefusalsAreRetried(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 1)
	var logins, selects atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, _ := command(line)
		switch {
		case name == "LOGIN" && logins.Add(1) == 1:
			c.Reply(tag + " NO [UNAVAILABLE] Authentication backend down, try later\r\n")
		case name == "SELECT" && selects.Add(1) == 1:
			c.Reply(tag + " NO [INUSE] Mailbox locked by another session\r\n")
		default:
			return false
		}
		return true
	}})
	src := newSource(t, testConfig(p.Host(), p.Port()))
	em := &fakeEmitter{}
	start(t, src, em) // its cleanup requires Run to return nil

	waitEmitted(t, em, 1)
	require.GreaterOrEqual(t, src.Status().Reconnects, uint64(2))
	require.GreaterOrEqual(t, logins.Load(), int32(2))
	require.GreaterOrEqual(t, selects.Load(), int32(2))
}

// The server's RFC822.SIZE does not bound memory: a body larger than
// MaxMessageSize is not read, whatever size the server reported, and is
// treated like an oversized message (its stand-in is emitted with the
// true size, and the message moves to the failed folder once that is
// dead-lettered).
func TestBodyLargerThanItsReportedSizeIsTreatedAsOversized(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	big := imaptest.Message("big@example.com", "big", strings.Repeat("x", 5000))
	_, err := srv.Append("INBOX", big)
	require.NoError(t, err)
	appendN(t, srv, 1, 1)
	size := regexp.MustCompile(`RFC822\.SIZE \d+`)
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{Rewrite: func(b []byte) []byte {
		return size.ReplaceAll(b, []byte("RFC822.SIZE 100")) // the server understates every size
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.MaxMessageSize = 2000
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 2)
	require.Eventually(t, func() bool { return src.Status().Oversized == 1 }, 10*time.Second, 5*time.Millisecond)
	for _, tk := range em.all() {
		require.LessOrEqual(t, int64(len(tk.Payload)), cfg.MaxMessageSize)
	}
	stand := emittedWithID(t, em, "big@example.com")
	require.Empty(t, stand.Payload)
	require.Equal(t, fmt.Sprintf("message of %d bytes exceeds max_message_size of 2000 bytes: not fetched", len(big)),
		stand.Header(task.HeaderRejected))
	require.Equal(t, "1@example.com", emittedWithID(t, em, "1@example.com").Header(imap.HeaderMessageID))
	complete(t, src, stand, task.DeadLettered)
	require.Equal(t, []string{"big@example.com"}, messageIDs(messages(t, srv, "Failed")))
	require.Equal(t, []string{"1@example.com"}, messageIDs(messages(t, srv, "INBOX")))
}

// A stand-in whose task does not complete within InFlightTimeout is
// emitted again, as any task, and its mail still counts once: one mail
// the server refuses and one over the size limit, each emitted twice,
// are Refused 1 and Oversized 1. Each emission counted again (2 and 2).
func TestStandInEmittedAgainCountsItsMailOnce(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 2) // the server refuses UID 1; UID 2 is returned
	_, err := srv.Append("INBOX", imaptest.Message("3@example.com", "big", strings.Repeat("x", 4096)))
	require.NoError(t, err)
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || !uidSetHas(strings.Fields(rest)[0], 1) {
			return false
		}
		c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.MaxMessageSize = 1024
	cfg.InFlightTimeout = 300 * time.Millisecond
	src := newSource(t, cfg)
	em := &fakeEmitter{} // completes nothing: every task is emitted again
	start(t, src, em)
	require.Eventually(t, func() bool {
		k := em.keys()
		n := 0
		for key, c := range k {
			if strings.Contains(key, ":refused:") || strings.Contains(key, ":oversized:") {
				n += min(c, 2)
			}
		}
		return n == 4
	}, 15*time.Second, 10*time.Millisecond, "both stand-ins emitted twice")
	st := src.Status()
	require.EqualValues(t, 1, st.Refused, "one mail refused")
	require.EqualValues(t, 1, st.Oversized, "one mail oversized")
	require.GreaterOrEqual(t, st.Reemitted, uint64(2))
}
