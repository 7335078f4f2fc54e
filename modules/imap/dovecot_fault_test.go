package imap_test

import (
	"crypto/sha256"
	"fmt"
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
)

// faultMails puts n mails into the INBOX, every third of about 3 MiB,
// and returns the SHA-256 of each by Message-ID.
func faultMails(t *testing.T, d *dovecottest.Server, n int) map[string][sha256.Size]byte {
	t.Helper()
	sums := map[string][sha256.Size]byte{}
	var msgs [][]byte
	for i := range n {
		body := "x"
		if i%3 == 1 {
			body = strings.Repeat(fmt.Sprintf("line %d of a large order mail\n", i), 100_000)
		}
		id := fmt.Sprintf("%d@fault", i)
		m := imaptest.Message(id, "order", body)
		sums[id] = sha256.Sum256(m)
		msgs = append(msgs, m)
	}
	require.NoError(t, d.Append("INBOX", msgs...))
	return sums
}

// checkEmitted: every mail emitted once, with exactly its bytes.
func checkEmitted(t *testing.T, em *fakeEmitter, sums map[string][sha256.Size]byte) {
	t.Helper()
	require.Eventually(t, func() bool { return em.count() >= len(sums) }, 30*time.Second, 20*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // a second emission would show by now
	seen := map[string]int{}
	for _, tk := range em.all() {
		id := tk.Header(imap.HeaderMessageID)
		seen[id]++
		require.Equal(t, sums[id], sha256.Sum256(tk.Payload), "mail %s emitted whole", id)
		require.Equal(t, strconv.Itoa(len(tk.Payload)), tk.Header(imap.HeaderSize))
	}
	require.Len(t, seen, len(sums))
	for id, n := range seen {
		require.Equal(t, 1, n, "mail %s emitted once", id)
	}
}

// The connection to Dovecot cut in the middle of a large body: nothing
// truncated is emitted, and after the reconnect every mail is, once.
func TestDovecotCutMidBodyEmitsEveryMailWholeOnce(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	sums := faultMails(t, d, 9)
	p := imaptest.NewProxy(t, d.Addr())
	p.CutOnce("BODY.PEEK[]", 1<<20)
	cfg := dovecotConfig(d, imap.ModeIdle)
	cfg.Host, cfg.Port = p.Host(), p.Port()
	cfg.BatchSize = 4
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	checkEmitted(t, em, sums)
	require.EqualValues(t, 1, p.Cuts())
	require.GreaterOrEqual(t, src.Status().Reconnects, uint64(1))
}

// The network to Dovecot partitioned in the middle of a body fetch (no
// FIN, no RST: the bytes just stop): the command timeout ends the
// session, the source reconnects once the network is back, and every
// mail is emitted once, whole.
func TestDovecotPartitionMidFetchEmitsEveryMailWholeOnce(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	sums := faultMails(t, d, 9)
	p := netfault.NewProxy(t, d.Addr())
	frozen := p.FreezeOn("BODY.PEEK[]")
	host, port, err := net.SplitHostPort(p.Addr())
	require.NoError(t, err)
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Host = host
	cfg.Port, err = strconv.Atoi(port)
	require.NoError(t, err)
	cfg.BatchSize, cfg.CommandTimeout, cfg.DialTimeout = 4, time.Second, time.Second
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	select {
	case <-frozen:
	case <-time.After(10 * time.Second):
		t.Fatal("no body fetch")
	}
	require.Eventually(t, func() bool { return src.Status().Reconnects >= 2 }, 10*time.Second, 20*time.Millisecond,
		"the command timeout ends the session; dialling fails while partitioned")
	require.False(t, src.Status().Connected)
	p.Thaw()
	checkEmitted(t, em, sums)
	require.Eventually(t, func() bool { return src.Status().Connected }, 10*time.Second, 20*time.Millisecond)
}

// The network to Dovecot partitioned while the source idles: the IDLE
// watchdog (Reconcile) ends the IDLE, the command timeout ends the
// session, the readiness check fails while the source cannot reconnect,
// and the mail delivered meanwhile is emitted once the network is back.
func TestDovecotPartitionMidIdleLosesNoMail(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	p := netfault.NewProxy(t, d.Addr())
	host, port, err := net.SplitHostPort(p.Addr())
	require.NoError(t, err)
	cfg := dovecotConfig(d, imap.ModeIdle)
	cfg.Host = host
	cfg.Port, err = strconv.Atoi(port)
	require.NoError(t, err)
	cfg.Reconcile, cfg.CommandTimeout, cfg.DialTimeout = time.Second, time.Second, time.Second
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	require.NoError(t, d.Save("INBOX", imaptest.Message("1@idle-partition", "order", "x")))
	waitEmitted(t, em, 1)

	p.Freeze()
	require.NoError(t, d.Save("INBOX", imaptest.Message("2@idle-partition", "order", "x")))
	require.Eventually(t, func() bool { return src.Status().Reconnects >= 1 }, 10*time.Second, 20*time.Millisecond)
	hr := dovecotHealth(t, src)
	waitCheck(t, hr, false, 10*time.Second, "not ready while partitioned")
	require.Equal(t, 1, em.count())
	p.Thaw()
	waitEmitted(t, em, 2)
	require.Equal(t, "2@idle-partition", em.all()[1].Header(imap.HeaderMessageID))
	waitCheck(t, hr, true, 10*time.Second, "ready again")
}
