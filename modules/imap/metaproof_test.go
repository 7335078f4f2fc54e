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
)

// The server refusing every body (its mail store failing) and the
// metadata of one mail (2: one it must read from its store), while it
// returns the metadata of the others (from its index): 2's refusal
// counted as evidence about it, the server having returned the others
// of its batch, though only their metadata, and 2 was given up, its
// stand-in emitted, while no mail's body could be had. A metadata
// refusal now counts only once the server returned a body in the
// session (the control asks for one when none came back yet): nothing
// is given up, and once the server recovers every mail is emitted whole.
func TestMetadataOfOtherMailIsNoProofOfARefusal(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3)
	var healed atomic.Bool
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if healed.Load() || name != "UID FETCH" {
			return false
		}
		if strings.Contains(rest, "BODY.PEEK[]") ||
			strings.Contains(rest, "ENVELOPE") && uidSetHas(strings.Fields(rest)[0], 2) {
			c.Reply(tag + " NO [SERVERBUG] Internal error occurred.\r\n")
			return true
		}
		return false
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.BatchSize = 2 // 1's refused body waits for the next chunk's answer
	cfg.RefusalSpan = 200 * time.Millisecond
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	began := time.Now()
	require.Eventually(t, func() bool {
		return em.count() > 0 || src.Status().Reconnects > 4*imap.RefusedSessionsBeforeSetAside &&
			time.Since(began) > 4*cfg.RefusalSpan
	}, 15*time.Second, 5*time.Millisecond)
	require.Zero(t, em.count(), "a mail given up while the server returned no body")
	require.Zero(t, src.Status().Refused)

	healed.Store(true)
	waitEmitted(t, em, 3)
	for _, tk := range em.all() {
		require.NotNil(t, tk.Payload, "emitted whole: %s", tk.Key)
	}
	require.Zero(t, src.Status().Refused)
}
