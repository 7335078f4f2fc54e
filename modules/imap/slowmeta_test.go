package imap_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
)

// A server that answers the metadata of a batch more slowly than
// command_timeout allows, though it makes progress all along (here one
// byte every 50ms), has the fetch cut by the command timeout (the
// metadata fetch's watchdog is not kicked by progress: its answer is
// small, and a drip must not hold the session for ever), but not for
// ever: the messages of the batch cut are fetched alone in the next
// session (see poison.go), each answered in time, and emitted.
func TestSlowMetadataOfABatchIsFetchedAloneNext(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3)
	var dripped atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		f := strings.Fields(rest)
		if name != "UID FETCH" || !strings.Contains(rest, "ENVELOPE") || len(f) == 0 || !strings.ContainsAny(f[0], ":,") {
			return false // a fetch of one message: answered at once
		}
		dripped.Add(1)
		c.Reply("* 1 FETCH (UID 1 ENVELOPE (\"")
		for range 600 { // 30s, one byte at a time
			select {
			case <-c.Closed():
				return true
			case <-time.After(50 * time.Millisecond):
			}
			c.Reply("x")
		}
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.CommandTimeout = time.Second
	src, logs := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 3)
	require.GreaterOrEqual(t, dripped.Load(), int32(1))
	require.Contains(t, lastLostError(logs), "command_timeout")
}
