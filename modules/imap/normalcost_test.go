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

// In normal operation (no suspect, no held mail) a session costs no
// control fetch: mail delivered across three sessions is fetched with
// one metadata and one body FETCH per chunk, and the mailbox is never
// searched whole (the control's UID SEARCH ALL) nor asked for part of
// a body (the control's BODY.PEEK[]<0.1024>) or for sizes alone.
func TestNormalSessionsAskForNoControl(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	var mu sync.Mutex
	var fetches, controls []string
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(_ *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case name == "UID SEARCH" && strings.TrimSpace(rest) == "ALL",
			name == "UID FETCH" && (!strings.Contains(rest, "ENVELOPE") && !strings.Contains(rest, "BODY") ||
				strings.Contains(rest, "BODY.PEEK[]<")):
			controls = append(controls, line)
		case name == "UID FETCH":
			fetches = append(fetches, line)
		}
		return false
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.Reconcile = time.Hour // only scans above the cursor
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	const rounds = 3
	for i := 0; i < rounds; i++ {
		before := src.Status().Reconnects
		appendN(t, srv, 1+2*i, 2)
		waitEmitted(t, em, 2*(i+1))
		srv.DropConnections() // the next mail in another session
		require.Eventually(t, func() bool { return src.Status().Reconnects > before }, 10*time.Second, 5*time.Millisecond)
	}
	require.Equal(t, 2*rounds, em.count())
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, controls, "a control asked for in normal operation")
	require.Len(t, fetches, 2*rounds, "one metadata and one body fetch per chunk: %q", fetches)
}
