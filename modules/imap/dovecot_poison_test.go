package imap_test

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/platform/task"
)

// A mail Dovecot's imap process dies on whenever it is fetched (its
// maildir file shorter than the size its name records: "Cached message
// size larger than expected", then a panic): it is given up after a few
// sessions, and its stand-in is dead-lettered with the reason (the
// connection ended, how many sessions) and moves it to Failed; the mail
// around it flows. It was set aside, left in the INBOX where no dead
// letter showed it, and fetched again after a restart. Every session
// ended on the batch that held it, and nothing of the mailbox was
// emitted, for good, before it was set aside at all.
func TestDovecotMailTheServerDiesOnIsDeadLettered(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	for _, id := range []string{"1@poison", "2@poison", "3@poison"} {
		require.NoError(t, d.Save("INBOX", imaptest.Message(id, "order", strings.Repeat(id+" ", 20))))
	}
	truncateMail(t, d, "INBOX", "<2@poison>")

	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Reconnect = imap.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	cfg.RefusalSpan = cfg.Reconnect.Max
	src := newSource(t, cfg)
	em := &workerEmitter{src: src}
	start(t, src, em)
	require.Eventually(t, func() bool {
		// Dovecot dies on a fetch of Failed's mail too: the maildir tells.
		return dovecotCount(t, d, "Processed") == 2 && len(maildirFiles(t, d, "Failed")) == 1
	}, 30*time.Second, 50*time.Millisecond, "the other mail is emitted and moved, the poison dead-lettered")
	ids, err := d.MessageIDs("Processed")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"1@poison", "3@poison"}, ids)
	require.Zero(t, dovecotCount(t, d, "INBOX"))

	st := src.Status()
	require.EqualValues(t, 1, st.Refused, "the mail the server dies on is given up")
	require.EqualValues(t, 1, st.CompletedFailed)
	require.EqualValues(t, 2, st.CompletedOK)
	require.Equal(t, 3, em.count())
	var standIn *task.Task
	for _, tk := range em.all() {
		if tk.Header(task.HeaderRejected) != "" {
			require.Nil(t, standIn, "one stand-in")
			standIn = tk
		}
	}
	require.NotNil(t, standIn)
	require.Nil(t, standIn.Payload)
	// Dovecot dies on its envelope too: only its place is known.
	require.Empty(t, standIn.Header(imap.HeaderMessageID))
	require.Equal(t, "INBOX", standIn.Header(imap.HeaderMailbox))
	require.Equal(t, "2", standIn.Header(imap.HeaderUID))
	require.NotEmpty(t, standIn.Header(imap.HeaderUIDValidity))
	reason := standIn.Header(task.HeaderRejected)
	require.Contains(t, reason, "ends the connection whenever it is asked for the message (metadata fetch alone")
	require.Contains(t, reason, fmt.Sprintf("%d consecutive sessions ended", imap.RefusedSessionsBeforeSetAside))
}

// maildirFiles is the mail files of box's maildir (new and cur).
func maildirFiles(t *testing.T, d *dovecottest.Server, box string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"new", "cur"} {
		files, err := filepath.Glob(filepath.Join(maildirOf(d, box), sub, "*"))
		require.NoError(t, err)
		out = append(out, files...)
	}
	return out
}

// A mail Dovecot refuses to return (here a proxy answers NO for its
// body, as Exchange does for a mail it cannot convert) while it returns
// the rest: held while it is alone in the INBOX (the rest moved to
// Processed), as the server shows no other mail returned in those
// sessions (see TestHeldMailIsNotGivenUpForABodyOutage), the sessions
// failing meanwhile; then, as new mail comes and is returned beside it,
// given up: its stand-in carries its Message-ID and the server's
// answer, is dead-lettered, and moves the mail to Failed, where it is
// not fetched again. It was set aside, left in the INBOX unseen by the
// dead letters; and, once alone, given up on refusals while the server
// returned nothing else.
func TestDovecotRefusedMailIsDeadLettered(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	// The refused mail (UID 3) comes once the others are moved: with
	// them beside it in the INBOX, a loaded machine's slower completions
	// left it returned beside them for more than the span, which gave it
	// up before it was alone.
	for _, id := range []string{"1@refused", "3@refused"} {
		require.NoError(t, d.Save("INBOX", imaptest.Message(id, "order", id)))
	}
	var asked atomic.Int32
	p := imaptest.NewProxyWith(t, net.JoinHostPort(d.Host(), strconv.Itoa(d.Port())), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || !uidSetHas(strings.Fields(rest)[0], 3) {
			return false
		}
		asked.Add(1)
		c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
		return true
	}})
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Host, cfg.Port = p.Host(), p.Port()
	src := newSource(t, cfg)
	em := &workerEmitter{src: src}
	start(t, src, em)
	require.Eventually(t, func() bool { return dovecotCount(t, d, "Processed") == 2 }, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, d.Save("INBOX", imaptest.Message("2@refused", "order", "2@refused")))
	require.Eventually(t, func() bool { return asked.Load() > 0 }, 30*time.Second, 50*time.Millisecond, "the refused mail asked for")
	// Alone in the INBOX: sessions over the span, enough to give it up
	// were the refusals counted.
	began, reconnects := time.Now(), src.Status().Reconnects
	require.Eventually(t, func() bool {
		return dovecotCount(t, d, "Failed") > 0 || src.Status().Reconnects > reconnects+imap.RefusedSessionsBeforeSetAside &&
			time.Since(began) > 2*cfg.RefusalSpan
	}, 30*time.Second, 50*time.Millisecond)
	require.Zero(t, dovecotCount(t, d, "Failed"), "alone, the server returning nothing else: no evidence about it")
	require.EqualValues(t, 0, src.Status().Refused)

	// New mail, returned beside it: evidence again, until it is given up.
	for i := 4; dovecotCount(t, d, "Failed") == 0; i++ {
		require.Less(t, i, 4+4*imap.RefusedSessionsBeforeSetAside, "given up once mail comes beside it")
		require.NoError(t, d.Save("INBOX", imaptest.Message(fmt.Sprintf("%d@refused", i), "order", "later")))
		require.Eventually(t, func() bool {
			return dovecotCount(t, d, "Processed") == i-1
		}, 30*time.Second, 50*time.Millisecond, "the new mail moved")
	}
	require.Eventually(t, func() bool { return dovecotCount(t, d, "INBOX") == 0 }, 30*time.Second, 50*time.Millisecond)
	ids, err := d.MessageIDs("Failed")
	require.NoError(t, err)
	require.Equal(t, []string{"2@refused"}, ids)

	var standIn *task.Task
	for _, tk := range em.all() {
		if tk.Header(task.HeaderRejected) != "" {
			require.Nil(t, standIn, "one stand-in")
			standIn = tk
		}
	}
	require.NotNil(t, standIn)
	require.Equal(t, "2@refused", standIn.Header(imap.HeaderMessageID))
	require.Equal(t, "3", standIn.Header(imap.HeaderUID))
	require.NotEmpty(t, standIn.Header(imap.HeaderSize))
	reason := standIn.Header(task.HeaderRejected)
	require.Contains(t, reason, "refuses to return the message (body fetch")
	require.Contains(t, reason, "could not be converted to an RFC-822 compatible format")
	st := src.Status()
	require.EqualValues(t, 1, st.Refused)
	require.EqualValues(t, 1, st.CompletedFailed)
	n := asked.Load()
	time.Sleep(3 * cfg.PollInterval)
	require.Equal(t, n, asked.Load(), "not asked for again")
}
