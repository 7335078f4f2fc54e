package imap_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
)

// Dovecot stamps its internal-error answers with the time ("Internal
// error occurred. Refer to server log for more information.
// [2026-12-06 03:45:21]"). A body outage answered so fails every session
// the same way, each with another stamp: the back-off must grow all the
// same. It was reset after every session (the text differed), and the
// source logged in again at reconnect.initial for as long as the outage
// lasted.
func TestOutageWithStampedAnswersBacksOff(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3)
	var n atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") {
			return false
		}
		i := n.Add(1) // a new stamp each answer
		c.Reply(fmt.Sprintf("%s NO [SERVERBUG] Internal error occurred. Refer to server log for more information. [2026-12-06 %02d:%02d:%02d]\r\n",
			tag, i/3600%24, i/60%60, i%60))
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
	last := logs.FilterMessage("imap connection lost, reconnecting").All()[sessions-1]
	in := time.Duration(last.ContextMap()["in"].(time.Duration))
	// Doubling from 10ms, the sixth delay is drawn within ±50% of 320ms;
	// reset each time, within ±50% of 10ms.
	require.Greater(t, in, 100*time.Millisecond, "the back-off grows through an outage answered with stamped NOs")
	require.Zero(t, em.count())
}
