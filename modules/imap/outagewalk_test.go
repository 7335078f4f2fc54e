package imap_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
)

// A body outage (every body refused, the index fine) with chunks of one
// (batch_size 1): a second chunk refused in a row has the scan ask the
// server for another message; refused too, the server fails as a whole
// and the session fails there. The session walked the whole mailbox,
// asking for every message on its own, before it failed: a session per
// retry as long as the backlog, and one longer than Reconnect.Max reset
// the back-off.
func TestBodyOutageDoesNotWalkTheWholeMailboxEverySession(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	const mails = 40
	appendN(t, srv, 1, mails)
	var mu sync.Mutex
	logins, bodies := 0, 0
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		mu.Lock()
		defer mu.Unlock()
		if name == "LOGIN" {
			logins++
			return false
		}
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") {
			return false
		}
		if logins == 1 {
			bodies++
		}
		c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.BatchSize = 1
	src, logs := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	require.Eventually(t, func() bool {
		return logs.FilterMessage("imap connection lost, reconnecting").Len() >= 1
	}, 20*time.Second, 5*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Less(t, bodies, 8, "body fetches in the first session of an outage")
	require.Zero(t, em.count())
}
