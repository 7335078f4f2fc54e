package imap

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// Only a refusal that no retry can fix ends Run: credentials refused
// (AUTHENTICATIONFAILED, AUTHORIZATIONFAILED) at login, a mailbox that
// does not exist (NONEXISTENT) at select, or a bare NO where that is all a
// server says. Temporary refusals are retried with back-off. For FETCH,
// a refusal about the messages (anything but a temporary code) may set
// them aside (settleRefused decides).
func TestRefusalClassification(t *testing.T) {
	t.Parallel()
	no := func(code imap.ResponseCode) error {
		return fmt.Errorf("imap: wrapped: %w", &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: "refused"})
	}
	bad := &imap.Error{Type: imap.StatusResponseTypeBad, Text: "what?"}
	for _, tt := range []struct {
		name                 string
		err                  error
		login, select_, skip bool
	}{
		{"bare NO", no(""), true, true, true},
		{"AUTHENTICATIONFAILED", no(imap.ResponseCodeAuthenticationFailed), true, false, true},
		{"AUTHORIZATIONFAILED", no(imap.ResponseCodeAuthorizationFailed), true, false, true},
		{"NONEXISTENT", no(imap.ResponseCodeNonExistent), false, true, true},
		{"UNAVAILABLE", no(imap.ResponseCodeUnavailable), false, false, false},
		{"INUSE", no(imap.ResponseCodeInUse), false, false, false},
		{"LIMIT (throttling)", no(imap.ResponseCodeLimit), false, false, false},
		{"SERVERBUG", no(imap.ResponseCodeServerBug), false, false, true},
		{"BAD", bad, false, false, false},
		{"network", fmt.Errorf("imap: %w", io.ErrUnexpectedEOF), false, false, false},
		{"nil", nil, false, false, false},
	} {
		require.Equal(t, tt.login, permanentLogin(tt.err), "login: %s", tt.name)
		require.Equal(t, tt.select_, permanentSelect(tt.err), "select: %s", tt.name)
		require.Equal(t, tt.skip, refused(tt.err), "fetch: %s", tt.name)
	}
}

// The bookkeeping of copies: a copy of a message no longer in flight is a
// message of its own (nothing recorded); copies a completion could not
// settle are scanned again from the lowest one, and only under the
// current UIDVALIDITY (other UIDs are void).
func TestCopyBookkeeping(t *testing.T) {
	t.Parallel()
	s, err := NewSource(Config{Host: "localhost", TLS: TLSNone, Username: "u", Password: "p", Kind: "k"}, nil)
	require.NoError(t, err)
	s.uidValidity = 7

	require.False(t, s.addDupe("gone", 3), "not in flight: emit it")
	require.Zero(t, PendingCopies(s))

	s.inflight["k"] = emitted{uid: 2, validity: 7}
	require.True(t, s.addDupe("k", 2), "the in-flight message itself")
	require.Zero(t, PendingCopies(s))
	require.True(t, s.addDupe("k", 9))
	require.True(t, s.addDupe("k", 5))
	require.Equal(t, []imap.UID{5}, s.forgetSettled("k", dupe{validity: 7, uids: []imap.UID{9}}))
	s.dropDupes("k", true)
	require.Zero(t, PendingCopies(s))
	require.Equal(t, imap.UID(5), s.rescan)

	s.rescan = 0
	s.dupes["old"] = dupe{validity: 6, uids: []imap.UID{1}}
	s.dropDupes("old", true)
	require.Zero(t, s.rescan, "UIDs of another UIDVALIDITY are void")
	require.Zero(t, PendingCopies(s))
	require.NoError(t, s.Close())
}

// What becomes of messages the server refused one by one: given up at
// once (returned, with the reason for their stand-ins) when it returned
// another of the batch; else counted per UID and an error (the session
// is retried), until every one of them has been refused alone in
// RefusedSessionsBeforeSetAside sessions over at least Reconnect.Max. A
// message fetched fine, given up, or a UIDVALIDITY change clears its
// count. One the server says was expunged is set aside, not given up.
func TestSettleRefused(t *testing.T) {
	t.Parallel()
	s, err := NewSource(Config{Host: "localhost", TLS: TLSNone, Username: "u", Password: "p", Kind: "k"}, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	now := time.Unix(1_000_000, 0)
	s.now = func() time.Time { return now }
	s.cfg.Reconnect.Max = time.Minute
	s.selected(7)
	no := fmt.Errorf("imap: fetch bodies: %w", &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Internal error"})
	refs := func(uids ...imap.UID) []refusal {
		var out []refusal
		for _, u := range uids {
			out = append(out, refusal{m: meta{uid: u}, err: no})
		}
		return out
	}
	// The control (see control): the server returns another message in
	// the session unless shown says otherwise; asked records the calls.
	var shown error
	var asked [][]imap.UID
	check := func(suspects []imap.UID) error {
		asked = append(asked, suspects)
		return shown
	}
	given := func(rs []refusal) (uids []imap.UID) {
		for _, r := range rs {
			require.Contains(t, r.reason, "Internal error", "the server's answer")
			uids = append(uids, r.m.uid)
		}
		return uids
	}

	// None returned, whatever the answer (a bare NO): the server failing
	// as a whole. An error, the same each time, and however many
	// sessions over however long, nothing is counted nor given up.
	var msgs []string
	for range 2 * RefusedSessionsBeforeSetAside {
		out, err := s.settleRefused(refs(2, 3), false, fetchBody, check)
		require.Error(t, err)
		require.ErrorIs(t, err, no)
		require.Empty(t, out)
		msgs = append(msgs, err.Error())
		now = now.Add(time.Minute)
	}
	require.Equal(t, msgs[0], msgs[len(msgs)-1], "the same text each session: Run's back-off grows")
	require.Empty(t, s.refusedAlone, "no evidence about any message")
	require.Empty(t, asked, "none held: no control asked for")

	// Others of the batch returned: evidence about 1, held (no error, not
	// given up, scanned again from it) until refused so in
	// RefusedSessionsBeforeSetAside sessions over at least the span.
	for i := range RefusedSessionsBeforeSetAside {
		out, err := s.settleRefused(refs(1), true, fetchBody, check)
		require.NoError(t, err)
		require.Empty(t, out, "held, refusal %d", i+1)
		require.True(t, s.refusedAlone[1].held)
		require.EqualValues(t, 1, s.rescan, "scanned again from it")
		s.rescan = 0
	}
	// Refused alone now (the others done), and the server returns no
	// other message in the session (a control refused, or none to ask
	// for): it may be failing as a whole, however long: nothing counted.
	now = now.Add(time.Minute)
	for _, why := range []error{errNoControl, no} {
		shown = why
		for range 2 * RefusedSessionsBeforeSetAside {
			out, err := s.settleRefused(refs(1), false, fetchBody, check)
			require.ErrorIs(t, err, why)
			require.Empty(t, out)
			now = now.Add(time.Minute)
		}
	}
	require.Equal(t, RefusedSessionsBeforeSetAside, s.refusedAlone[1].sessions, "not counted")
	require.Equal(t, []imap.UID{1}, asked[0], "the control asks for another message")
	// The server returns another message in the session: the evidence
	// about it stands, so that counts, and it fails no session; due once
	// the span passed.
	shown = nil
	out, err := s.settleRefused(refs(1), false, fetchBody, check)
	require.NoError(t, err)
	require.Equal(t, []imap.UID{1}, given(out))
	require.Contains(t, out[0].reason, fmt.Sprintf("body fetch, refused in %d sessions while it returned other mail", RefusedSessionsBeforeSetAside+1))
	require.Empty(t, s.refusedAlone, "given up: forgotten")

	// Refused alone with one never refused beside it: no evidence about
	// the other, the server may be failing: nothing counted.
	_, err = s.settleRefused(refs(4), true, fetchMetadata, check)
	require.NoError(t, err)
	_, err = s.settleRefused(refs(4, 5), false, fetchMetadata, check)
	require.Error(t, err)
	require.Equal(t, 1, s.refusedAlone[4].sessions)
	// A held message gone from the mailbox (expunged by another client):
	// the reconcile pass forgets its count.
	_, err = s.settleRefused(refs(6), true, fetchBody, check)
	require.NoError(t, err)
	s.forgetGone([]imap.UID{4}, now)
	require.NotContains(t, s.refusedAlone, imap.UID(6))
	require.Contains(t, s.refusedAlone, imap.UID(4))
	// A UIDVALIDITY change voids the counts.
	s.selected(7)
	require.Len(t, s.refusedAlone, 1, "same UIDVALIDITY: kept")
	s.selected(8)
	require.Empty(t, s.refusedAlone)

	// NO [SERVERBUG] to every message asked for, one held included: the
	// server failing, for as long as it does; counts against none.
	bug := fmt.Errorf("imap: fetch bodies: %w", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error"})
	_, err = s.settleRefused([]refusal{{m: meta{uid: 9}, err: bug}}, true, fetchBody, check)
	require.NoError(t, err)
	for range 2 * RefusedSessionsBeforeSetAside {
		_, err = s.settleRefused([]refusal{{m: meta{uid: 9}, err: bug}}, false, fetchBody, check)
		require.Error(t, err)
		now = now.Add(time.Minute)
	}
	require.Equal(t, 1, s.refusedAlone[9].sessions)
	delete(s.refusedAlone, 9)

	// Expunged by another client: nothing to dead-letter, set aside.
	gone := fmt.Errorf("imap: fetch bodies: %w", &imap.Error{Type: imap.StatusResponseTypeNo, Code: "EXPUNGEISSUED", Text: "Some of the requested messages no longer exist"})
	out, err = s.settleRefused([]refusal{{m: meta{uid: 5}, err: gone}}, true, fetchBody, check)
	require.NoError(t, err)
	require.Empty(t, out)
	require.EqualValues(t, 1, s.Status().SetAside)
	require.Zero(t, s.Status().Refused, "counted when a stand-in is emitted, not here")
}

// Only an id a HEADER search may not match as it is (non-ASCII, or with
// "=?" as an encoded word has) sends a completion to the size search.
func TestSearchableMessageID(t *testing.T) {
	for id, want := range map[string]bool{
		"1@example.com":                true,
		"":                             true,
		"=?utf-8?q?x=ZZ?=@example.com": false,
		"café@example.com":             false,
		"a=b?c@example.com":            true,
	} {
		require.Equal(t, want, searchable(id), id)
	}
}

// A fetch cut because the session itself ended (Run's context cancelled)
// makes no suspects and counts against no message; one the server cut
// does both (see poison.go). A NO is the server's answer, not a cut.
func TestOnlyAConnectionTheServerEndedMakesSuspects(t *testing.T) {
	t.Parallel()
	s, err := NewSource(Config{Host: "localhost", TLS: TLSNone, Username: "u", Password: "p", Kind: "k"}, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	cut := fmt.Errorf("imap: fetch bodies: %w", io.ErrUnexpectedEOF)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	require.False(t, s.suspectAll(ended, []imap.UID{7}, fetchBody, cut))
	s.lostAlone(ended, meta{uid: 7}, fetchBody, cut)
	require.Empty(t, s.suspects)
	require.Empty(t, s.refusedAlone)

	no := &imap.Error{Type: imap.StatusResponseTypeNo, Text: "refused"}
	require.False(t, s.suspectAll(context.Background(), []imap.UID{7}, fetchBody, no))
	require.True(t, s.suspectAll(context.Background(), []imap.UID{7, 8}, fetchBody, cut))
	require.True(t, s.anySuspect([]imap.UID{8}))
	s.lostAlone(context.Background(), meta{uid: 7}, fetchBody, cut)
	require.Zero(t, s.refusedAlone[7].sessions, "no other mail returned in the session: not counted")
	require.True(t, s.refusedAlone[7].dropped)
	s.serving()
	s.lostAlone(context.Background(), meta{uid: 7}, fetchBody, cut)
	require.Equal(t, 1, s.refusedAlone[7].sessions)
}

// The stand-in of a message the server refuses carries the server's
// words as its reason, made fit for a task header: a queue refuses a
// header with a line break (the task, and so the dead letter, would be
// lost to the source's error), so control characters become spaces, and
// a hostile server's long text is cut.
func TestRefusedStandInReasonIsAHeaderValue(t *testing.T) {
	t.Parallel()
	s, err := NewSource(Config{Host: "localhost", TLS: TLSNone, Username: "u", Password: "p", Kind: "k", Mailbox: "INBOX"}, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	long := strings.Repeat("é", 3000)
	r := refusal{m: meta{uid: 9, msgID: "x@y", size: 42}, reason: "refused:\r\nline two\x00" + long}
	tk := s.refusedTask(r, 7)
	reason := tk.Header(task.HeaderRejected)
	require.True(t, strings.HasPrefix(reason, "refused:  line two é"), reason[:30])
	require.NotContains(t, reason, "\n")
	require.LessOrEqual(t, len(reason), maxReasonBytes+len("…"))
	require.True(t, utf8.ValidString(reason))
	require.Nil(t, tk.Payload)
	require.Equal(t, "imap:INBOX:x@y:refused:u@localhost:7:9", tk.Key)
	require.Equal(t, "42", tk.Header(HeaderSize))
	require.Equal(t, "9", tk.Header(HeaderUID))
	require.Equal(t, "7", tk.Header(HeaderUIDValidity))

	// The metadata refused too: only the place is known.
	tk = s.refusedTask(refusal{m: meta{uid: 3}, reason: "r"}, 7)
	require.Equal(t, "imap:INBOX::refused:u@localhost:7:3", tk.Key)
	require.Empty(t, tk.Header(HeaderMessageID))
	require.NotContains(t, tk.Headers, HeaderSize, "unknown, not 0")
}

// Two sources on one queue watching mailboxes of the same name under the
// same UIDVALIDITY (two accounts, two servers) give the stand-ins of
// their UID 3 without a Message-ID different keys: they shared one, so
// the backend dropped the second stand-in as a duplicate, and its mail
// was neither dead-lettered nor moved. The same source gives the same
// key every time (stable across restarts).
func TestStandInKeysNameTheAccount(t *testing.T) {
	t.Parallel()
	source := func(host, user string) *Source {
		s, err := NewSource(Config{Host: host, TLS: TLSNone, Username: user, Password: "p", Kind: "k", Mailbox: "INBOX", Queue: "mail"}, nil)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	}
	a, b, c := source("localhost", "orders"), source("localhost", "invoices"), source("127.0.0.1", "orders")
	m := meta{uid: 3, size: 1 << 30}
	for _, kind := range []string{"oversized", "refused"} {
		task := func(s *Source) string {
			if kind == "oversized" {
				return s.oversizedTask(m, 7).Key
			}
			return s.refusedTask(refusal{m: m, reason: "r"}, 7).Key
		}
		keys := map[string]bool{task(a): true, task(b): true, task(c): true}
		require.Len(t, keys, 3, "%s: one key per account", kind)
		require.Equal(t, task(a), task(source("LocalHost", "orders")), "%s: stable", kind)
	}
}

// The reconcile pass forgets every per-UID record of a message no longer
// in the mailbox: the suspects too (a fetch the connection ended on, its
// message expunged by another client before it is fetched again), which
// stayed until a restart or a UIDVALIDITY change.
func TestReconcileForgetsGoneSuspects(t *testing.T) {
	s, err := NewSource(Config{Host: "localhost", TLS: TLSNone, Username: "u", Password: "p", Kind: "k"}, nil)
	require.NoError(t, err)
	s.suspects[3], s.suspects[5] = fetchBody, fetchMetadata
	s.aside[5] = true
	s.forgetGone([]imap.UID{3}, time.Now())
	require.Equal(t, map[imap.UID]fetchKind{3: fetchBody}, s.suspects)
	require.Empty(t, s.aside)
}
