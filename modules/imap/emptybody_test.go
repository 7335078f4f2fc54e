package imap_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/task"
)

// A held mail alone above the cursor (its body refused, the others
// processed and left in the mailbox), the server answering every other
// body with nothing in it (BODY[] "", OK: its store failing): that empty
// body counted as the server returning the control's mail, and the held
// mail was given up. An empty body is no sign the server reads its
// store: nothing counts, and once the server returns the control's body
// the held mail is given up.
func TestEmptyBodyIsNoProofTheServerServes(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3) // UID 1 is the one the server refuses
	var empty atomic.Bool // the others' bodies answered empty
	var emptied atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") {
			return false
		}
		set := strings.Fields(rest)[0]
		if uidSetHas(set, 1) {
			c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
			return true
		}
		if !empty.Load() || strings.ContainsAny(set, ":,") {
			return false
		}
		emptied.Add(1)
		// UIDs are sequence numbers here: nothing was expunged.
		c.Reply(fmt.Sprintf("* %s FETCH (UID %s BODY[]<0> \"\")\r\n%s OK Fetch completed.\r\n", set, set, tag))
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.OnSuccess.MoveTo = imap.Ptr("")
	cfg.RefusalSpan = 300 * time.Millisecond
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 2)
	empty.Store(true)
	for _, tk := range em.all()[:2] {
		complete(t, src, tk, task.Succeeded)
	}
	began, reconnects := time.Now(), src.Status().Reconnects
	require.Eventually(t, func() bool {
		return em.count() > 2 || src.Status().Reconnects > reconnects+2*imap.RefusedSessionsBeforeSetAside &&
			time.Since(began) > 3*cfg.RefusalSpan
	}, 15*time.Second, 5*time.Millisecond)
	require.Equal(t, 2, em.count(), "the held mail given up on an empty body")
	require.NotZero(t, emptied.Load(), "the control's body answered empty")
	require.Zero(t, src.Status().Refused)

	empty.Store(false)
	waitEmitted(t, em, 3)
	standIn := em.all()[2]
	require.Equal(t, "1@example.com", standIn.Header(imap.HeaderMessageID))
	require.Contains(t, standIn.Header(task.HeaderRejected), "while it returned other mail")
}

// As above, the server sending the control's whole body (2000 bytes)
// where the first KiB was asked for: the control read up to what it
// asked for, drained the rest unread, and took the mail for one the
// server answered with nothing; the held mail waited for new mail for
// ever. A body longer than asked for is a body.
func TestControlBodyLongerThanAskedForProvesTheServerServes(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3)  // UID 1 is the one the server refuses
	var whole atomic.Int32 // control bodies sent whole
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") {
			return false
		}
		set := strings.Fields(rest)[0]
		if uidSetHas(set, 1) {
			c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
			return true
		}
		if !strings.Contains(rest, "BODY.PEEK[]<0.1024>") {
			return false
		}
		whole.Add(1)
		body := strings.Repeat("x", 2000)
		c.Reply(fmt.Sprintf("* %s FETCH (UID %s BODY[]<0> {%d}\r\n%s)\r\n%s OK Fetch completed.\r\n", set, set, len(body), body, tag))
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.OnSuccess.MoveTo = imap.Ptr("")
	cfg.RefusalSpan = 300 * time.Millisecond
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 2)
	for _, tk := range em.all()[:2] {
		complete(t, src, tk, task.Succeeded)
	}
	require.Eventually(t, func() bool { return em.count() == 3 }, 15*time.Second, 5*time.Millisecond,
		"the held mail given up, the control's body sent whole")
	require.NotZero(t, whole.Load())
	standIn := em.all()[2]
	require.Equal(t, "1@example.com", standIn.Header(imap.HeaderMessageID))
	require.Contains(t, standIn.Header(task.HeaderRejected), "while it returned other mail")
}

// The server answering one mail's body with nothing in it (BODY[] "",
// OK) while its RFC822.SIZE says it holds something: the mail was
// emitted with an empty payload, its order lost as an empty mail (the
// worker finds nothing in it, and the mail is moved away as handled).
// Such a body is no body: the mail is refused as one the server does not
// return, held while the server returns the others, and given up (its
// stand-in dead-lettered with the reason, the mail kept whole in the
// failed folder) only on that evidence over RefusalSpan.
func TestBodyReturnedEmptyIsNotEmitted(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3) // UID 2 is the one answered empty
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || strings.Fields(rest)[0] != "2" {
			return false
		}
		// UIDs are sequence numbers here: nothing was expunged.
		c.Reply(fmt.Sprintf("* 2 FETCH (UID 2 BODY[] \"\")\r\n%s OK Fetch completed.\r\n", tag))
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.BatchSize = 1 // 2's body fetched alone
	cfg.RefusalSpan = 300 * time.Millisecond
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	require.Eventually(t, func() bool {
		for _, tk := range em.all() {
			if tk.Header(imap.HeaderMessageID) == "2@example.com" {
				return true
			}
		}
		return false
	}, 15*time.Second, 5*time.Millisecond)
	waitEmitted(t, em, 3)
	for _, tk := range em.all() {
		if tk.Header(imap.HeaderMessageID) != "2@example.com" {
			require.NotEmpty(t, tk.Payload, tk.Key)
			require.Empty(t, tk.Header(task.HeaderRejected), tk.Key)
			continue
		}
		require.Empty(t, tk.Payload)
		require.Contains(t, tk.Header(task.HeaderRejected), "returned the message empty",
			"emitted as a mail with an empty payload")
	}
	require.EqualValues(t, 1, src.Status().Refused)
}

// A completion looking for its mail by content (its UIDVALIDITY stale)
// while the server answers the mail's body with nothing in it (BODY[]
// "", OK), its RFC822.SIZE above 0, for a while: that body was taken
// for another mail's, the mail not found, the completion counted done
// (CompletedAgain) and the mail left in the INBOX, to be emitted and
// handled again. Such a body is no body, as for the emission (see
// TestBodyReturnedEmptyIsNotEmitted): the completion is retried, and
// moves the mail once the server returns it; as for the emission, the
// mail is not given up on such answers before RefusalSpan, though the
// server returns the other mail's body (a drop of the connection on it
// would count over Reconnect.Max).
func TestCompletionBodyReturnedEmptyIsNoAnswer(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	mail := imaptest.Message("1@empty-answer", "order", "the order")
	_, err := srv.Append("INBOX", mail)
	require.NoError(t, err)
	appendN(t, srv, 2, 1) // another mail, to prove against
	var empties atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || strings.Contains(rest, "BODY.PEEK[]<") ||
			strings.Fields(rest)[0] != "1" || empties.Add(1) > 3*imap.RefusedSessionsBeforeSetAside {
			return false
		}
		// UIDs are sequence numbers here: nothing was expunged.
		c.Reply(fmt.Sprintf("* 1 FETCH (UID 1 BODY[] \"\")\r\n%s OK Fetch completed.\r\n", tag))
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.RefusalSpan = time.Minute
	src := newSource(t, cfg) // not run: only its completions
	validity, err := srv.UIDValidity("INBOX")
	require.NoError(t, err)
	tk := &task.Task{Key: "k", Payload: mail, Headers: map[string]string{
		imap.HeaderMessageID: "1@empty-answer", imap.HeaderUID: "1", imap.HeaderUIDValidity: strconv.FormatUint(uint64(validity)+1, 10),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())

	st := src.Status()
	require.Zero(t, st.CompletedAgain, "the mail taken for gone: status %+v", st)
	require.Greater(t, empties.Load(), int32(3*imap.RefusedSessionsBeforeSetAside), "the body answered empty")
	require.EqualValues(t, 1, st.CompletedOK)
	require.Zero(t, st.CompletionSetAside)
	processed := messages(t, srv, "Processed")
	require.Len(t, processed, 1)
	require.Equal(t, mail, processed[0].Raw)
	require.Len(t, messages(t, srv, "INBOX"), 1, "the other mail stays")
}

// As above, the server answering that body empty whenever it is asked
// for while it returns the other mail's: the mail is taken for one the
// server fails on and set aside as one the connection ends on is, so
// the completion, and those queued after it, get past it.
func TestCompletionGetsPastABodyAlwaysReturnedEmpty(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	mail := imaptest.Message("1@always-empty", "order", "the order")
	_, err := srv.Append("INBOX", mail)
	require.NoError(t, err)
	appendN(t, srv, 2, 1) // another mail, to prove against
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || strings.Contains(rest, "BODY.PEEK[]<") ||
			strings.Fields(rest)[0] != "1" {
			return false
		}
		c.Reply(fmt.Sprintf("* 1 FETCH (UID 1 BODY[] \"\")\r\n%s OK Fetch completed.\r\n", tag))
		return true
	}})
	src := newSource(t, testConfig(p.Host(), p.Port())) // not run: only its completions
	validity, err := srv.UIDValidity("INBOX")
	require.NoError(t, err)
	tk := &task.Task{Key: "k", Payload: mail, Headers: map[string]string{
		imap.HeaderMessageID: "1@always-empty", imap.HeaderUID: "1", imap.HeaderUIDValidity: strconv.FormatUint(uint64(validity)+1, 10),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())
	require.EqualValues(t, 1, src.Status().CompletionSetAside)
	require.Len(t, messages(t, srv, "INBOX"), 2, "left where it is")
}

// The server answering every body with nothing in it (BODY[] "", OK:
// its store failing) for longer than RefusalSpan, a mail of 0 bytes
// (RFC822.SIZE 0) in the same group as two mails that hold something:
// the 0-byte mail's body, as empty as it should be, counted as the
// server returning mail, so the others' empty answers counted as
// evidence against them, and both good mails were given up (their
// stand-ins dead-lettered) for an outage. Only a body with something in
// it proves the server serves: nothing is given up, the 0-byte mail is
// emitted all the same, and the others once the server returns them.
func TestEmptyMailBesideBodiesReturnedEmptyIsNoProof(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 2)
	_, err := srv.Append("INBOX", []byte{}) // UID 3: 0 bytes
	require.NoError(t, err)
	var outage atomic.Bool
	outage.Store(true)
	var emptied atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if !outage.Load() || name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") {
			return false
		}
		set := strings.Fields(rest)[0]
		section := "BODY[]"
		if strings.Contains(rest, "BODY.PEEK[]<") {
			section = "BODY[]<0>"
		}
		var reply strings.Builder
		for u := 1; u <= 3; u++ { // UIDs are sequence numbers here: nothing was expunged
			if uidSetHas(set, goimap.UID(u)) {
				fmt.Fprintf(&reply, "* %d FETCH (UID %d %s \"\")\r\n", u, u, section)
			}
		}
		emptied.Add(1)
		c.Reply(reply.String() + tag + " OK Fetch completed.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.RefusalSpan = 300 * time.Millisecond
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	began := time.Now()
	require.Eventually(t, func() bool {
		return em.count() > 1 || src.Status().Reconnects > 4*imap.RefusedSessionsBeforeSetAside && time.Since(began) > 4*cfg.RefusalSpan
	}, 20*time.Second, 5*time.Millisecond)
	require.NotZero(t, emptied.Load(), "the bodies answered empty")
	for _, tk := range em.all() {
		require.Empty(t, tk.Header(task.HeaderRejected), "a good mail given up while the server answered every body empty")
	}
	require.Zero(t, src.Status().Refused)
	require.Equal(t, 1, em.count(), "the 0-byte mail, emitted once: %v", em.keys())
	require.Empty(t, em.all()[0].Payload)

	outage.Store(false)
	emitted := func(id string) *task.Task {
		for _, tk := range em.all() {
			if tk.Header(imap.HeaderMessageID) == id {
				return tk
			}
		}
		return nil
	}
	require.Eventually(t, func() bool { return emitted("1@example.com") != nil && emitted("2@example.com") != nil },
		15*time.Second, 5*time.Millisecond)
	for _, tk := range em.all() {
		require.Empty(t, tk.Header(task.HeaderRejected), tk.Key)
	}
	require.NotEmpty(t, emitted("1@example.com").Payload)
	require.NotEmpty(t, emitted("2@example.com").Payload)
	require.Zero(t, src.Status().Refused)
}
