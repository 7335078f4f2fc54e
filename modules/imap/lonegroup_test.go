package imap_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/task"
)

// A mail the server refuses whose body is fetched alone every time
// (MaxBatchBytes holds one mail: its neighbour never fits beside it),
// while the server returns the mail after it: the refusal is evidence
// about that mail, which is held and then given up, the mail after it
// flowing. Its lone group was taken for the server failing as a whole:
// the session failed on it for ever, and no mail after it was emitted.
func TestRefusedMailAloneInItsBodyGroupDoesNotBlockTheMailbox(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3) // UID 1 is the one the server refuses
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || !uidSetHas(strings.Fields(rest)[0], 1) {
			return false
		}
		c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.MaxBatchBytes = int64(len(imaptest.Message("1@example.com", "order 1", "hello"))) // one mail a group
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 3)
	all := em.all()
	for i, tk := range all[:2] {
		require.Equal(t, fmt.Sprintf("%d@example.com", i+2), tk.Header(imap.HeaderMessageID))
		require.Empty(t, tk.Header(task.HeaderRejected))
	}
	standIn := all[2]
	require.Equal(t, "1@example.com", standIn.Header(imap.HeaderMessageID))
	require.Nil(t, standIn.Payload)
	require.Contains(t, standIn.Header(task.HeaderRejected), "while it returned other mail")
	require.EqualValues(t, 1, src.Status().Refused)
}

// A group of two whose every message the server fails on, the first by
// closing the connection whenever it is asked for (given up so, see
// poison.go), the second by a NO, beside a group the server returns: the
// first's stand-in is emitted, the second is held and given up, the
// third emitted. With the group's refusals settled by the chunk, the
// first was skipped without its stand-in: neither emitted nor left for a
// later scan (until a reconcile pass found it below the cursor).
func TestMailGivenUpInARefusedGroupHasItsStandIn(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3)
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") {
			return false
		}
		set := strings.Fields(rest)[0]
		switch {
		case uidSetHas(set, 1):
			c.Close()
		case uidSetHas(set, 2):
			c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
		default:
			return false
		}
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.MaxBatchBytes = 2 * int64(len(imaptest.Message("1@example.com", "order 1", "hello"))) // groups: 1 and 2, then 3
	cfg.Reconcile = time.Hour                                                                 // no reconcile pass finds a mail skipped
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 3)
	byID := map[string]*task.Task{}
	for _, tk := range em.all() {
		byID[tk.Header(imap.HeaderMessageID)] = tk
	}
	require.Len(t, byID, 3)
	require.NotNil(t, byID["3@example.com"].Payload)
	require.Contains(t, byID["1@example.com"].Header(task.HeaderRejected), "ends the connection whenever it is asked for the message")
	require.Contains(t, byID["2@example.com"].Header(task.HeaderRejected), "while it returned other mail")
	require.EqualValues(t, 2, src.Status().Refused)
}

// As above with batch_size 1: every chunk is one mail, so the refused
// mail is judged by the next chunk, which the server returns. Its chunk
// of one was taken for the server failing as a whole: the session failed
// on it for ever, no mail after it emitted.
func TestRefusedMailInAChunkOfOneDoesNotBlockTheMailbox(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3) // UID 1 is the one the server refuses
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || !uidSetHas(strings.Fields(rest)[0], 1) {
			return false
		}
		c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.BatchSize = 1
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 3)
	all := em.all()
	for i, tk := range all[:2] {
		require.Equal(t, fmt.Sprintf("%d@example.com", i+2), tk.Header(imap.HeaderMessageID))
		require.Empty(t, tk.Header(task.HeaderRejected))
	}
	standIn := all[2]
	require.Equal(t, "1@example.com", standIn.Header(imap.HeaderMessageID))
	require.Nil(t, standIn.Payload)
	require.Contains(t, standIn.Header(task.HeaderRejected), "while it returned other mail")
	require.EqualValues(t, 1, src.Status().Refused)
}

// As above, the server refusing the mail's metadata (its ENVELOPE) rather
// than its body: the chunk of one is judged by the next chunk too. It was
// taken for the server failing as a whole: the session failed on it for
// ever, no mail after it emitted.
func TestRefusedMetadataInAChunkOfOneDoesNotBlockTheMailbox(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3) // UID 1 is the one the server refuses
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "ENVELOPE") || !uidSetHas(strings.Fields(rest)[0], 1) {
			return false
		}
		c.Reply(tag + " NO Internal error occurred.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.BatchSize = 1
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 3)
	all := em.all()
	for i, tk := range all[:2] {
		require.Equal(t, fmt.Sprintf("%d@example.com", i+2), tk.Header(imap.HeaderMessageID))
		require.Empty(t, tk.Header(task.HeaderRejected))
	}
	standIn := all[2]
	require.Equal(t, "1", standIn.Header(imap.HeaderUID))
	require.Nil(t, standIn.Payload)
	require.Contains(t, standIn.Header(task.HeaderRejected), "metadata fetch, refused in")
	require.EqualValues(t, 1, src.Status().Refused)
}

// As above with two mails in a row that the server refuses, each a chunk
// of one: both are judged by the chunk after them, which the server
// returns. The second chunk's refusal, with the first deferred already,
// was taken for the server failing as a whole: the session failed on
// them for ever, the mail after them never emitted.
func TestRefusedMailInTwoChunksOfOneInARowDoesNotBlockTheMailbox(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3) // UIDs 1 and 2 are the ones the server refuses
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		set := strings.Fields(rest + " x")[0]
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || !uidSetHas(set, 1) && !uidSetHas(set, 2) {
			return false
		}
		c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.BatchSize = 1
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 3)
	all := em.all()
	require.Equal(t, "3@example.com", all[0].Header(imap.HeaderMessageID))
	require.Empty(t, all[0].Header(task.HeaderRejected))
	for _, standIn := range all[1:] {
		require.Contains(t, []string{"1@example.com", "2@example.com"}, standIn.Header(imap.HeaderMessageID))
		require.Nil(t, standIn.Payload)
		require.Contains(t, standIn.Header(task.HeaderRejected), "while it returned other mail")
	}
	require.NotEqual(t, all[1].Header(imap.HeaderMessageID), all[2].Header(imap.HeaderMessageID))
	require.EqualValues(t, 2, src.Status().Refused)
}

// As above with a refused mail followed by one above MaxMessageSize
// (never fetched: the server returns no body of its chunk), each a chunk
// of one: the refused mail is judged by the chunk after them. It was
// settled by the oversized mail's chunk, taken for the server failing as
// a whole: the session failed on it for ever, the mail after them never
// emitted.
func TestRefusedMailBeforeAnOversizedMailDoesNotBlockTheMailbox(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 1) // UID 1 is the one the server refuses
	_, err := srv.Append("INBOX", imaptest.Message("2@example.com", "order 2", strings.Repeat("big ", 1000)))
	require.NoError(t, err)
	appendN(t, srv, 3, 1)
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || !uidSetHas(strings.Fields(rest)[0], 1) {
			return false
		}
		c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.BatchSize = 1
	cfg.MaxMessageSize = 2000
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 3)
	byID := map[string]*task.Task{}
	for _, tk := range em.all() {
		byID[tk.Header(imap.HeaderMessageID)] = tk
	}
	require.NotNil(t, byID["3@example.com"].Payload)
	require.Nil(t, byID["2@example.com"].Payload)
	require.Contains(t, byID["1@example.com"].Header(task.HeaderRejected), "while it returned other mail")
	require.EqualValues(t, 1, src.Status().Refused)
}
