package imap_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
)

// A server that resets the connection on every UID SEARCH, after SELECT
// (a crash on the mailbox's index), fails every session the same way:
// the back-off must grow. The error's text carried the connection's local
// port, another each session, and the back-off was reset every time.
func TestResetEverySessionBacksOff(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3)
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		_, name, _ := command(line)
		if name != "UID SEARCH" {
			return false
		}
		c.Reset()
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.Reconnect = imap.Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Second}
	src, logs := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	const sessions = 6
	require.Eventually(t, func() bool {
		return logs.FilterMessage("imap connection lost, reconnecting").Len() >= sessions
	}, 20*time.Second, 5*time.Millisecond)
	all := logs.FilterMessage("imap connection lost, reconnecting").All()
	in := time.Duration(all[sessions-1].ContextMap()["in"].(time.Duration))
	require.Greater(t, in, 100*time.Millisecond, "the back-off grows through resets after SELECT")
}
