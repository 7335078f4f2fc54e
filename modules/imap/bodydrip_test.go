package imap_test

import (
	"bytes"
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

// A server that drips the body of one mail (a byte every 200ms, within
// command_timeout, 1s here, so that every read is progress) has the
// fetch cut by the body fetch's overall deadline (command_timeout plus
// the bytes asked for at 64 KiB/s), the error naming the limit: the
// batch is fetched message by message next, the others emitted, and the
// dripped mail, cut so whenever it is fetched alone, is set aside (the
// network may be as slow: it is not dead-lettered). Before, every byte
// restarted the watchdog: the fetch of the batch, and with it the
// session and every mail of the mailbox, was held for as long as the
// server dripped (here 10,000 bytes: more than half an hour).
func TestDrippedBodyIsCutByTheFetchDeadline(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3) // UID 2 is the one the server drips
	var dripped atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		f := strings.Fields(rest)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || len(f) == 0 || !uidSetHas(f[0], 2) {
			return false
		}
		dripped.Add(1)
		c.Reply("* 2 FETCH (UID 2 BODY[] {10000}\r\n")
		for range 10000 {
			select {
			case <-c.Closed():
				return true
			case <-time.After(200 * time.Millisecond):
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
	waitEmitted(t, em, 2)
	var uids []string
	for _, tk := range em.all() {
		uids = append(uids, tk.Header(imap.HeaderUID))
	}
	require.ElementsMatch(t, []string{"1", "3"}, uids, "the dripped mail was emitted, or another twice")
	require.GreaterOrEqual(t, dripped.Load(), int32(2))
	cut := lostErrors(logs, "was not done within")
	require.NotEmpty(t, cut, "no fetch was cut by its deadline: %q", lastLostError(logs))
	t.Logf("cut with: %s", cut[0])
	require.Contains(t, cut[0], "command_timeout 1s plus the")
	require.Contains(t, cut[0], "bytes asked for at 64 KiB/s")
	require.Eventually(t, func() bool { return src.Status().SetAside >= 1 }, 30*time.Second, 5*time.Millisecond,
		"the dripped mail is not set aside: %+v", src.Status())
	require.Zero(t, src.Status().Refused, "the dripped mail was dead-lettered")
}

// A server sending a large body slowly but steadily (512 KiB at about
// 160 KiB/s: longer than command_timeout, 1s here, as a whole, faster
// than 64 KiB/s) meets the body fetch's deadline: the mail is emitted
// whole, the session never cut.
func TestSlowSteadyLargeBodyIsFetched(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	raw := imaptest.Message("big@example.com", "big", strings.Repeat("0123456789abcdef", 32<<10))
	_, err := srv.Append("INBOX", raw)
	require.NoError(t, err)
	var served atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		f := strings.Fields(rest)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || strings.Contains(rest, "BODY.PEEK[]<") || len(f) == 0 || !uidSetHas(f[0], 1) {
			return false
		}
		c.Reply(fmt.Sprintf("* 1 FETCH (UID 1 BODY[] {%d}\r\n", len(raw)))
		for rest := raw; len(rest) > 0; {
			select {
			case <-c.Closed():
				return true
			case <-time.After(100 * time.Millisecond):
			}
			n := min(len(rest), 16<<10)
			c.Reply(string(rest[:n]))
			rest = rest[n:]
		}
		c.Reply(")\r\n" + tag + " OK Fetch completed\r\n")
		served.Add(1)
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.CommandTimeout = time.Second
	src, logs := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 1)
	require.True(t, bytes.Equal(raw, em.all()[0].Payload), "the body emitted is not the mail")
	require.EqualValues(t, 1, served.Load())
	require.Empty(t, lastLostError(logs), "the session was cut")
	require.Zero(t, src.Status().Reconnects)
}
