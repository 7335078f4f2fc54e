package imap_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/platform/task"
)

// A network that goes silent whenever a mail's body is asked for (a path
// that drops the large packets, a partition that keeps striking at the
// body fetch) for a few sessions over Reconnect.Max: every fetch of the
// mail alone ends by the command timeout, no answer from the server,
// the mail beside it returned first in each session. That is no sign the
// server fails on the mail: it is set aside, and once the network is
// back the reconcile pass fetches it again, emitted whole and processed.
// It was given up as one the server ends the connection on,
// dead-lettered and moved to Failed unprocessed.
func TestDovecotSilentNetworkOnABodySendsNoMailToFailed(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Save("INBOX", imaptest.Message("1@fine", "order", "another order")))
	require.NoError(t, d.Save("INBOX", imaptest.Message("2@blackhole", "order", "a good order")))
	p := netfault.NewProxy(t, d.Addr())
	host, port, err := net.SplitHostPort(p.Addr())
	require.NoError(t, err)
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Host = host
	cfg.Port, err = strconv.Atoi(port)
	require.NoError(t, err)
	cfg.CommandTimeout, cfg.DialTimeout = 300*time.Millisecond, time.Second
	cfg.Reconcile = time.Second
	cfg.Reconnect = imap.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	cfg.RefusalSpan = cfg.Reconnect.Max
	src := newSource(t, cfg)
	em := &workerEmitter{src: src}
	start(t, src, em)
	for i := 0; i < imap.RefusedSessionsBeforeSetAside+1; i++ {
		pattern := "FETCH 2 (UID BODY.PEEK[])" // alone
		if i == 0 {
			pattern = "BODY.PEEK[]" // the two together
		}
		frozen := p.FreezeOn(pattern)
		select {
		case <-frozen:
		case <-time.After(10 * time.Second):
			t.Fatalf("no body fetch %d (emitted %d)", i, em.count())
		}
		before := src.Status().Reconnects
		require.Eventually(t, func() bool { return src.Status().Reconnects > before }, 10*time.Second, 10*time.Millisecond)
		p.Thaw()
	}
	require.Eventually(t, func() bool { return dovecotCount(t, d, "Processed") == 2 || dovecotCount(t, d, "Failed") == 1 },
		20*time.Second, 50*time.Millisecond)
	for _, tk := range em.all() {
		require.Empty(t, tk.Header(task.HeaderRejected), "a good mail is dead-lettered for a silent network")
	}
	require.Equal(t, 2, dovecotCount(t, d, "Processed"))
	require.Zero(t, src.Status().Refused)
	require.EqualValues(t, 1, src.Status().SetAside)
}

// A server that closes the connection whenever a mail's body is asked
// for, and returns its envelope, and the mail beside it: the stand-in's
// reason says the body fetch ended the connection, and it carries the
// Message-ID and size the server returned. It said "metadata fetch
// alone", a fetch that never failed, and carried neither.
func TestDovecotDeathOnTheBodyIsSaidSo(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Save("INBOX", imaptest.Message("1@body-dies", "order", "an order")))
	require.NoError(t, d.Save("INBOX", imaptest.Message("2@fine", "order", "another order")))
	p := imaptest.NewProxyWith(t, d.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		if name == "UID FETCH" && strings.Contains(rest, "BODY.PEEK[]") && uidSetHas(strings.Fields(rest)[0], 1) {
			c.Close()
			return true
		}
		return false
	}})
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Host, cfg.Port = p.Host(), p.Port()
	cfg.Reconnect = imap.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	cfg.RefusalSpan = cfg.Reconnect.Max
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 2)
	var tk *task.Task
	for _, e := range em.all() {
		if e.Header(task.HeaderRejected) != "" {
			require.Nil(t, tk, "one stand-in")
			tk = e
		}
	}
	require.NotNil(t, tk)
	reason := tk.Header(task.HeaderRejected)
	require.Contains(t, reason, "(body fetch alone, 3 consecutive sessions ended")
	require.Equal(t, "1@body-dies", tk.Header(imap.HeaderMessageID))
	require.NotEmpty(t, tk.Header(imap.HeaderSize))
}
