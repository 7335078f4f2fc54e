package imap_test

import (
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

// The server fails as a whole for several sessions over more than
// Reconnect.Max (every body fetch answered NO [SERVERBUG], Dovecot's
// internal error), then recovers: no mail is given up, every mail is
// emitted whole. Each mail was given up after three sessions over
// Reconnect.Max (2s by default), dead-lettered and moved to Failed
// unprocessed.
func TestServerBugForSecondsGivesUpNoMail(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3)
	var failing atomic.Bool
	failing.Store(true)
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if !failing.Load() || name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") {
			return false
		}
		c.Reply(tag + " NO [SERVERBUG] Internal error occurred. Refer to server log for more information.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	began := time.Now()
	require.Eventually(t, func() bool {
		return src.Status().Reconnects > imap.RefusedSessionsBeforeSetAside && time.Since(began) > 2*cfg.Reconnect.Max
	}, 15*time.Second, 5*time.Millisecond)
	failing.Store(false)
	waitEmitted(t, em, 3)
	for _, tk := range em.all() {
		require.Empty(t, tk.Header(task.HeaderRejected), "a good mail given up for a server failing a few seconds")
	}
	require.Zero(t, src.Status().Refused)
}
