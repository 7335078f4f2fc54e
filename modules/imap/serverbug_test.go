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
// Reconnect.Max and RefusalSpan (every body fetch answered NO [SERVERBUG],
// Dovecot's internal error, or a bare NO, what many servers say whatever
// went wrong), then recovers: no mail is given up, every mail is emitted
// whole. Each mail was given up after three sessions over Reconnect.Max
// (2s by default), dead-lettered and moved to Failed unprocessed: for
// NO [SERVERBUG] until that code was told apart, for a bare NO until
// nothing returned of a batch was taken as no evidence about its mail.
func TestServerBugForSecondsGivesUpNoMail(t *testing.T) {
	t.Parallel()
	for name, answer := range map[string]string{
		"serverbug": " NO [SERVERBUG] Internal error occurred. Refer to server log for more information.\r\n",
		"bare":      " NO Internal error occurred.\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			serverFailsForSeconds(t, answer)
		})
	}
}

func serverFailsForSeconds(t *testing.T, answer string) {
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3)
	var failing atomic.Bool
	failing.Store(true)
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if !failing.Load() || name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") {
			return false
		}
		c.Reply(tag + answer)
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	began := time.Now()
	require.Eventually(t, func() bool {
		return src.Status().Reconnects > imap.RefusedSessionsBeforeSetAside && time.Since(began) > 2*max(cfg.Reconnect.Max, cfg.RefusalSpan)
	}, 15*time.Second, 5*time.Millisecond)
	failing.Store(false)
	waitEmitted(t, em, 3)
	for _, tk := range em.all() {
		require.Empty(t, tk.Header(task.HeaderRejected), "a good mail given up for a server failing a few seconds")
	}
	require.Zero(t, src.Status().Refused)
}
