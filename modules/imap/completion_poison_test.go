package imap_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/task"
)

// A completion looking for its mail by Message-ID (its UIDVALIDITY is
// stale) among mails of that id, one of which the server drops the
// connection on whenever its envelope is fetched: that one is fetched
// alone, set aside after RefusedSessionsBeforeSetAside attempts, and the
// mail is found and moved. The envelope fetch of the candidates ended
// the connection every time, and the completion was retried forever.
func TestCompletionGetsPastAnEnvelopeTheServerDiesOn(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	poison := imaptest.Message("1@same-id", "order", "another mail of the same id")
	mail := imaptest.Message("1@same-id", "order", "the order")
	for _, m := range [][]byte{poison, mail} { // UID 1 is the poison
		_, err := srv.Append("INBOX", m)
		require.NoError(t, err)
	}
	var cut atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "ENVELOPE") || !uidSetHas(strings.Fields(rest)[0], 1) {
			return false
		}
		cut.Add(1)
		c.Close()
		return true
	}})
	src := newSource(t, testConfig(p.Host(), p.Port()))
	validity, err := srv.UIDValidity("INBOX")
	require.NoError(t, err)
	tk := &task.Task{Key: "k", Payload: mail, Headers: map[string]string{
		imap.HeaderMessageID: "1@same-id", imap.HeaderUID: "1", imap.HeaderUIDValidity: strconv.FormatUint(uint64(validity)+1, 10),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())

	processed := messages(t, srv, "Processed")
	require.Len(t, processed, 1)
	require.Equal(t, mail, processed[0].Raw)
	inbox := messages(t, srv, "INBOX")
	require.Len(t, inbox, 1, "the mail the server dies on stays")
	require.Equal(t, poison, inbox[0].Raw)
	require.GreaterOrEqual(t, cut.Load(), int32(imap.RefusedSessionsBeforeSetAside+1))
	require.EqualValues(t, 1, src.Status().CompletedOK)
	require.EqualValues(t, 1, src.Status().CompletionSetAside, "the mail the server dies on, counted")
	require.Zero(t, src.Status().Refused, "the emission gave nothing up")
}

// A connection that ends a few times while the completion reads the
// candidates (a network failure, not the message) sets nothing aside:
// the mail, fetched alone meanwhile, is found and moved once the
// connection holds.
func TestCompletionSetsNothingAsideOnATransientFailure(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	mail := imaptest.Message("1@transient", "order", "the order")
	for _, m := range [][]byte{mail, imaptest.Message("1@transient", "order", "another")} {
		_, err := srv.Append("INBOX", m)
		require.NoError(t, err)
	}
	var cut atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		// The group's fetch, then the mail's alone, one less time than
		// it takes to set it aside.
		if name != "UID FETCH" || !strings.Contains(rest, "ENVELOPE") || cut.Load() >= imap.RefusedSessionsBeforeSetAside {
			return false
		}
		cut.Add(1)
		c.Close()
		return true
	}})
	src := newSource(t, testConfig(p.Host(), p.Port()))
	validity, err := srv.UIDValidity("INBOX")
	require.NoError(t, err)
	tk := &task.Task{Key: "k", Payload: mail, Headers: map[string]string{
		imap.HeaderMessageID: "1@transient", imap.HeaderUID: "1", imap.HeaderUIDValidity: strconv.FormatUint(uint64(validity)+1, 10),
	}}
	complete(t, src, tk, task.Succeeded)
	require.EqualValues(t, imap.RefusedSessionsBeforeSetAside, cut.Load())
	processed := messages(t, srv, "Processed")
	require.Len(t, processed, 1)
	require.Equal(t, mail, processed[0].Raw)
	require.EqualValues(t, 1, src.Status().CompletedOK)
	require.Zero(t, src.Status().CompletionSetAside)
}

// A completion looking for its mail by Message-ID among mails of that
// id, one of which the server drops the connection on whenever its body
// is fetched, its envelope returned (from the server's index): the
// envelope fetched alone went through in every attempt, and that forgot
// the drops of its body, so they were never RefusedSessionsBeforeSetAside
// and the completion, and every one queued after it, was retried for
// ever. Only the fetch that dropped the connection going through
// forgets its drops: the mail is set aside, the mail looked for is found
// and moved.
func TestCompletionGetsPastABodyTheServerDiesOn(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	poison := imaptest.Message("1@body-id", "order", "another mail of the same id")
	mail := imaptest.Message("1@body-id", "order", "the order")
	for _, m := range [][]byte{poison, mail} { // UID 1 is the poison
		_, err := srv.Append("INBOX", m)
		require.NoError(t, err)
	}
	var cut atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || !uidSetHas(strings.Fields(rest)[0], 1) {
			return false
		}
		cut.Add(1)
		c.Close()
		return true
	}})
	src := newSource(t, testConfig(p.Host(), p.Port()))
	validity, err := srv.UIDValidity("INBOX")
	require.NoError(t, err)
	tk := &task.Task{Key: "k", Payload: mail, Headers: map[string]string{
		imap.HeaderMessageID: "1@body-id", imap.HeaderUID: "1", imap.HeaderUIDValidity: strconv.FormatUint(uint64(validity)+1, 10),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())

	processed := messages(t, srv, "Processed")
	require.Len(t, processed, 1)
	require.Equal(t, mail, processed[0].Raw)
	inbox := messages(t, srv, "INBOX")
	require.Len(t, inbox, 1, "the mail the server dies on stays")
	require.Equal(t, poison, inbox[0].Raw)
	require.GreaterOrEqual(t, cut.Load(), int32(imap.RefusedSessionsBeforeSetAside+1))
	require.EqualValues(t, 1, src.Status().CompletionSetAside)
}

// The mail the server drops the connection on alone in its mailbox, the
// only candidate of a completion (its Message-ID; the mail looked for is
// gone): no other mail to prove that the server serves. The drops are
// counted all the same, over RefusalSpan: the completion, and those
// queued after it, are not held up for ever by one bad mail, and a store
// outage shorter than RefusalSpan sets nothing aside (see
// TestDovecotStoreOutageDuringALookupSetsNothingAside for one with
// other mail to prove against).
func TestCompletionSetsAsideTheOnlyCandidateOverRefusalSpan(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	_, err := srv.Append("INBOX", imaptest.Message("1@lone", "order", "a mail of the same id"))
	require.NoError(t, err)
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "ENVELOPE") {
			return false
		}
		c.Close()
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.RefusalSpan = 2 * time.Second
	src := newSource(t, cfg)
	validity, err := srv.UIDValidity("INBOX")
	require.NoError(t, err)
	tk := &task.Task{Key: "k", Payload: imaptest.Message("1@lone", "order", "the order"), Headers: map[string]string{
		imap.HeaderMessageID: "1@lone", imap.HeaderUID: "1", imap.HeaderUIDValidity: strconv.FormatUint(uint64(validity)+1, 10),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	began := time.Now()
	require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())
	require.GreaterOrEqual(t, time.Since(began), cfg.RefusalSpan, "set aside before RefusalSpan")
	require.EqualValues(t, 1, src.Status().CompletionSetAside)
	require.Len(t, messages(t, srv, "INBOX"), 1, "left where it is")
}

// As above, the mailbox holding one other mail, whose body the server
// drops the connection on too: every control failed, the server was
// taken for failing as a whole, and the completion, and every one queued
// after it, was retried for ever. A mail that failed the control in
// RefusedSessionsBeforeSetAside attempts over RefusalSpan can prove
// nothing: it is no longer asked for, and with no other mail to ask for
// the candidate's drops count over RefusalSpan.
func TestCompletionGetsPastCandidateWhenEveryControlFails(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	for _, m := range [][]byte{
		imaptest.Message("1@no-proof", "order", "a mail of the same id"),
		imaptest.Message("2@no-proof", "order", "another mail, its body failing too"),
	} {
		_, err := srv.Append("INBOX", m)
		require.NoError(t, err)
	}
	var controls atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		if name != "UID FETCH" {
			return false
		}
		set := strings.Fields(rest)[0]
		switch {
		case strings.Contains(rest, "ENVELOPE") && uidSetHas(set, 1):
		case strings.Contains(rest, "BODY.PEEK[]") && uidSetHas(set, 2):
			controls.Add(1)
		default:
			return false
		}
		c.Close()
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.RefusalSpan = 500 * time.Millisecond
	src := newSource(t, cfg)
	validity, err := srv.UIDValidity("INBOX")
	require.NoError(t, err)
	tk := &task.Task{Key: "k", Payload: imaptest.Message("1@no-proof", "order", "the order"), Headers: map[string]string{
		imap.HeaderMessageID: "1@no-proof", imap.HeaderUID: "1", imap.HeaderUIDValidity: strconv.FormatUint(uint64(validity)+1, 10),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	began := time.Now()
	require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())
	require.GreaterOrEqual(t, time.Since(began), cfg.RefusalSpan, "set aside before RefusalSpan")
	require.GreaterOrEqual(t, controls.Load(), int32(imap.RefusedSessionsBeforeSetAside))
	require.EqualValues(t, 1, src.Status().CompletionSetAside)
	require.Len(t, messages(t, srv, "INBOX"), 2, "both left where they are")
}

// As TestCompletionGetsPastABodyTheServerDiesOn, the mail the server
// dies on (2) above the mail looked for (1), and nothing else in the
// mailbox: the control asked before the mail looked for was fetched
// alone was the bad mail, the only other one, and failed, so every
// attempt was taken for the server failing as a whole; the completion,
// and every one queued after it, waited until the bad mail had failed
// the control over RefusalSpan, then its drops counted over RefusalSpan
// again (two minutes by default), though the server returned the mail
// looked for all along. The mails a lookup's fetch dropped the
// connection on are no control, a body returned in the attempt proves
// the server serves, and the mails with drops are fetched after the
// others: the bad mail is set aside over Reconnect.Max.
func TestCompletionGetsPastABodyTheServerDiesOnAboveTheMail(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	mail := imaptest.Message("1@above", "order", "the order")
	poison := imaptest.Message("1@above", "order", "another mail of the same id")
	for _, m := range [][]byte{mail, poison} { // UID 2 is the poison
		_, err := srv.Append("INBOX", m)
		require.NoError(t, err)
	}
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || !uidSetHas(strings.Fields(rest)[0], 2) {
			return false
		}
		c.Close()
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.RefusalSpan = time.Minute
	src := newSource(t, cfg)
	validity, err := srv.UIDValidity("INBOX")
	require.NoError(t, err)
	tk := &task.Task{Key: "k", Payload: mail, Headers: map[string]string{
		imap.HeaderMessageID: "1@above", imap.HeaderUID: "1", imap.HeaderUIDValidity: strconv.FormatUint(uint64(validity)+1, 10),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())

	processed := messages(t, srv, "Processed")
	require.Len(t, processed, 1)
	require.Equal(t, mail, processed[0].Raw)
	inbox := messages(t, srv, "INBOX")
	require.Len(t, inbox, 1, "the mail the server dies on stays")
	require.Equal(t, poison, inbox[0].Raw)
	require.EqualValues(t, 1, src.Status().CompletionSetAside)
}

// As TestCompletionGetsPastAnEnvelopeTheServerDiesOn, with RefusalSpan
// one minute, the mail looked for the only other one in the mailbox:
// the control asked before the mail looked for was fetched alone found
// no other mail to ask for (the bad mail a suspect), and that "none" was
// kept for the attempt, so the control was not asked before the bad
// mail either, though the mail looked for, its envelope returned, was
// one to ask for then. Every drop counted unproven, over RefusalSpan:
// the completion, and every one queued after it, waited a minute while
// the server returned the mail looked for all along. Whether a mailbox
// holds a control is told for each message asked for: the drops count
// over Reconnect.Max.
func TestCompletionGetsPastAnEnvelopeTheServerDiesOnBelowTheMail(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	poison := imaptest.Message("1@below", "order", "another mail of the same id")
	mail := imaptest.Message("1@below", "order", "the order")
	for _, m := range [][]byte{poison, mail} { // UID 1 is the poison
		_, err := srv.Append("INBOX", m)
		require.NoError(t, err)
	}
	var controls atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		if name == "UID FETCH" && strings.Contains(rest, "BODY.PEEK[]<") {
			controls.Add(1)
		}
		if name != "UID FETCH" || !strings.Contains(rest, "ENVELOPE") || !uidSetHas(strings.Fields(rest)[0], 1) {
			return false
		}
		c.Close()
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.RefusalSpan = time.Minute
	src := newSource(t, cfg)
	validity, err := srv.UIDValidity("INBOX")
	require.NoError(t, err)
	tk := &task.Task{Key: "k", Payload: mail, Headers: map[string]string{
		imap.HeaderMessageID: "1@below", imap.HeaderUID: "1", imap.HeaderUIDValidity: strconv.FormatUint(uint64(validity)+1, 10),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())

	processed := messages(t, srv, "Processed")
	require.Len(t, processed, 1)
	require.Equal(t, mail, processed[0].Raw)
	inbox := messages(t, srv, "INBOX")
	require.Len(t, inbox, 1, "the mail the server dies on stays")
	require.Equal(t, poison, inbox[0].Raw)
	require.EqualValues(t, 1, src.Status().CompletionSetAside)
	require.NotZero(t, controls.Load(), "the mail looked for asked for as the control")
}

// As TestCompletionGetsPastABodyTheServerDiesOn, then another mail of
// the same Message-ID completed by content: the mail set aside is no
// longer fetched. It lost its suspect's mark when set aside, so the next
// lookup fetched it again among the others, the connection ended, and
// every completion that read it as a candidate failed an attempt and
// dropped the connection once more.
func TestCompletionFetchesNoMailSetAside(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	poison := imaptest.Message("1@aside", "order", "another mail of the same id")
	mail := imaptest.Message("1@aside", "order", "the order")
	later := imaptest.Message("1@aside", "order", "a later order")
	for _, m := range [][]byte{poison, mail, later} { // UID 1 is the poison
		_, err := srv.Append("INBOX", m)
		require.NoError(t, err)
	}
	var cut atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || !uidSetHas(strings.Fields(rest)[0], 1) {
			return false
		}
		cut.Add(1)
		c.Close()
		return true
	}})
	src := newSource(t, testConfig(p.Host(), p.Port()))
	validity, err := srv.UIDValidity("INBOX")
	require.NoError(t, err)
	taskOf := func(key string, raw []byte) *task.Task {
		return &task.Task{Key: key, Payload: raw, Headers: map[string]string{
			imap.HeaderMessageID: "1@aside", imap.HeaderUID: "1", imap.HeaderUIDValidity: strconv.FormatUint(uint64(validity)+1, 10),
		}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, src.Complete(ctx, taskOf("k1", mail), task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())
	require.EqualValues(t, 1, src.Status().CompletionSetAside)
	cuts, failures := cut.Load(), src.Status().CompletionFailures

	require.NoError(t, src.Complete(ctx, taskOf("k2", later), task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())
	require.Equal(t, cuts, cut.Load(), "the mail set aside fetched again")
	st := src.Status()
	require.Equal(t, failures, st.CompletionFailures, "status %+v", st)
	require.EqualValues(t, 2, st.CompletedOK)
	require.Len(t, messages(t, srv, "Processed"), 2)
	inbox := messages(t, srv, "INBOX")
	require.Len(t, inbox, 1)
	require.Equal(t, poison, inbox[0].Raw)
}
