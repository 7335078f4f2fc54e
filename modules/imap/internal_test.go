package imap

import (
	"fmt"
	"io"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"
)

// Only a refusal that no retry can fix ends Run: credentials refused
// (AUTHENTICATIONFAILED, AUTHORIZATIONFAILED) at login, a mailbox that
// does not exist (NONEXISTENT) at select, or a bare NO where that is all a
// server says. Temporary refusals are retried with back-off. For FETCH,
// a refusal about the messages (anything but a temporary code) sets them
// aside.
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
