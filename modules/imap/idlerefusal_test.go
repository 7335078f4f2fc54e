package imap_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
)

// A server that refuses IDLE for a while (NO [LIMIT]: too many idling
// connections) and then takes it: the session polls meanwhile, then
// idles again on the same connection, without reconnecting. It polled
// for the rest of the connection, which may last days.
func TestTemporaryIdleRefusalIdlesAgain(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	var idles atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, _ := command(line)
		if name != "IDLE" {
			return false
		}
		if idles.Add(1) <= 2 {
			c.Reply(tag + " NO [LIMIT] Too many idling connections\r\n")
			return true
		}
		return false
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.Mode = imap.ModeIdle
	cfg.PollInterval = 300 * time.Millisecond
	cfg.Reconcile = 200 * time.Millisecond
	src, logs := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	require.Eventually(t, func() bool { return idles.Load() >= 3 && src.Status().Mode == imap.ModeIdle },
		10*time.Second, 5*time.Millisecond, "IDLE tried again, and taken")
	appendN(t, srv, 1, 1)
	waitEmitted(t, em, 1)
	st := src.Status()
	require.Zero(t, st.Reconnects, "one connection: %s", st.LastError)
	require.EqualValues(t, 1, p.Accepted())
	require.Len(t, logs.FilterMessageSnippet("refuses IDLE").All(), 1, "warned once per connection")
}
