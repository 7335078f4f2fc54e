package imap_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
)

// The watched mailbox gone for a while after the source watched it (a
// person deleting and creating it again, a migration tool: the source's
// next SELECT may come between the two) is waited for with the reconnect
// back-off, as a lost connection, and watched again once it is back.
// Such a SELECT's NO [NONEXISTENT] ended Run with ErrMailbox, as if the
// configuration named a mailbox that never existed (seen against Dovecot
// under load: the source stopped for good between the delete and the
// create).
func TestMailboxGoneWhileWatchedIsWaitedFor(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	_, err := srv.Append("INBOX", imaptest.Message("1@before", "order", "one"))
	require.NoError(t, err)
	var gone atomic.Bool
	var refused atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, _ := command(line)
		if name != "SELECT" || !gone.Load() {
			return false
		}
		refused.Add(1)
		c.Reply(tag + " NO [NONEXISTENT] Mailbox doesn't exist: INBOX\r\n")
		return true
	}})
	src := newSource(t, testConfig(p.Host(), p.Port()))
	em := &fakeEmitter{}
	done, _ := start(t, src, em)
	waitEmitted(t, em, 1)

	gone.Store(true)
	p.DropAll()
	require.Eventually(t, func() bool { return refused.Load() >= 3 }, 10*time.Second, 10*time.Millisecond,
		"the source selects the mailbox again, with back-off; status %+v", src.Status())
	st := src.Status()
	require.False(t, st.Connected)
	require.True(t, strings.Contains(st.LastError, "doesn't exist"), "the status names why: %q", st.LastError)
	require.ErrorIs(t, src.Check(context.Background()), imap.ErrNotReady, "not ready while the mailbox is gone")
	select {
	case err := <-done:
		t.Fatalf("Run returned while the mailbox was gone: %v", err)
	default:
	}

	_, err = srv.Append("INBOX", imaptest.Message("2@after", "order", "two"))
	require.NoError(t, err)
	gone.Store(false)
	waitEmitted(t, em, 2)
	require.Eventually(t, func() bool { return src.Status().Connected }, 5*time.Second, 10*time.Millisecond)
}
