package imap_test

import (
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

// The connection to Dovecot reset whenever one mail's body is asked for
// (a firewall, a host crashing: not the server's word about the mail),
// in more sessions, over a longer span, than a mail the server closes
// the connection on is given up after: the mail is set aside, not
// dead-lettered, and processed once the resets stop (the next reconcile
// pass); the mail around it flows meanwhile. It was dead-lettered and
// moved to Failed unprocessed, as a mail Dovecot dies on is.
func TestDovecotResetOnOneMailSendsNoMailToFailed(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	for _, id := range []string{"1@reset", "2@reset", "3@reset"} {
		require.NoError(t, d.Save("INBOX", imaptest.Message(id, "order", id)))
	}
	var resetting atomic.Bool
	var resets atomic.Int32
	resetting.Store(true)
	p := imaptest.NewProxyWith(t, d.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		if !resetting.Load() || name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || !uidSetHas(strings.Fields(rest)[0], 2) {
			return false
		}
		resets.Add(1)
		c.Reset()
		return true
	}})
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Host, cfg.Port = p.Host(), p.Port()
	cfg.Reconnect = imap.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	cfg.RefusalSpan = cfg.Reconnect.Max
	cfg.Reconcile = 2 * time.Second
	src := newSource(t, cfg)
	em := &workerEmitter{src: src}
	start(t, src, em)
	require.Eventually(t, func() bool { return src.Status().SetAside >= 1 }, 20*time.Second, 20*time.Millisecond,
		"set aside after the resets")
	require.Greater(t, resets.Load(), int32(imap.RefusedSessionsBeforeSetAside), "reset on every fetch of it alone")
	require.Eventually(t, func() bool { return dovecotCount(t, d, "Processed") == 2 }, 20*time.Second, 20*time.Millisecond,
		"the mail around it flows")
	resetting.Store(false)
	require.Eventually(t, func() bool { return dovecotCount(t, d, "Processed") == 3 }, 20*time.Second, 50*time.Millisecond,
		"processed once the resets stop")
	for _, tk := range em.all() {
		require.Empty(t, tk.Header(task.HeaderRejected), "a good mail given up for a reset")
	}
	require.Zero(t, src.Status().Refused)
	require.Zero(t, dovecotCount(t, d, "Failed"))
}
