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

// A held mail alone above the cursor through a body outage, the two
// mails beside it processed and left in the mailbox (\Seen): every
// session fails on the control, refused too, each session asking for
// the other mail (the one refused last is chosen after the other). The
// session's error named the control's mail, so it differed from the
// last session's every time, and the back-off was reset after each: the
// source logged in again at reconnect.initial for as long as the outage
// lasted. The back-off now grows.
func TestHeldMailOutageBacksOffAlthoughTheControlRotates(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3) // UID 1 is refused once, with 2 and 3 returned
	var outage atomic.Bool
	var controls atomic.Value // the UID sets of the control body fetches, in turn
	controls.Store("")
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") {
			return false
		}
		set := strings.Fields(rest)[0]
		if !outage.Load() {
			if set == "3" { // the last asked for alone: the outage starts after it
				outage.Store(true)
			}
			if !uidSetHas(set, 1) {
				return false
			}
		} else if set != "1" {
			controls.Store(controls.Load().(string) + " " + set)
		}
		c.Reply(tag + " NO Internal error occurred.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.OnSuccess.MoveTo = imap.Ptr("")
	cfg.Reconnect = imap.Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Second}
	src, logs := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 2)
	for _, tk := range em.all() {
		complete(t, src, tk, task.Succeeded)
	}
	held := func() []time.Duration {
		var out []time.Duration
		for _, e := range logs.FilterMessage("imap connection lost, reconnecting").All() {
			if strings.Contains(e.ContextMap()["error"].(string), "held messages") {
				out = append(out, e.ContextMap()["in"].(time.Duration))
			}
		}
		return out
	}
	const sessions = 6
	require.Eventually(t, func() bool { return len(held()) >= sessions }, 20*time.Second, 5*time.Millisecond)
	require.Contains(t, controls.Load(), " 2", "the control asked for each mail in turn")
	require.Contains(t, controls.Load(), " 3", "the control asked for each mail in turn")
	// Doubling from 10ms, the sixth delay is drawn within ±50% of 320ms;
	// reset each time, within ±50% of 10ms.
	require.Greater(t, held()[sessions-1], 100*time.Millisecond,
		"the back-off grows through an outage, the control asking for another mail each session (%v)", held())
	require.Equal(t, 2, em.count())
}
