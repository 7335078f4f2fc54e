package imap_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
)

// hostileSearch answers the first n UID SEARCH commands of any client
// with answer (an ESEARCH ALL set) in the server's stead; later ones
// reach the server.
func hostileSearch(t *testing.T, srv *memserver.Server, n int32, answer string) *imaptest.Proxy {
	t.Helper()
	var left atomic.Int32
	left.Store(n)
	return imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, rest, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(strings.ToUpper(rest), "UID SEARCH") || left.Add(-1) < 0 {
			return false
		}
		c.Reply("* ESEARCH (TAG \"" + tag + "\") UID ALL " + answer + "\r\n" + tag + " OK SEARCH completed\r\n")
		return true
	}})
}

// A search answer naming more UIDs than the mailbox holds (a hostile or
// broken server: one ESEARCH range of four billion UIDs) is refused, and
// the source goes on once the server answers honestly. It was expanded:
// 16 GB, the source stuck allocating, its Run not returning on cancel.
func TestHostileSearchAnswerIsRefused(t *testing.T) {
	t.Parallel()
	for _, answer := range []string{"1:4294967295", "1:3,5:100000"} {
		t.Run(answer, func(t *testing.T) {
			t.Parallel()
			srv := imaptest.NewServer(t, memserver.Options{})
			appendN(t, srv, 1, 2)
			p := hostileSearch(t, srv, 1, answer)
			src := newSource(t, testConfig(p.Host(), p.Port()))
			em := &fakeEmitter{}
			start(t, src, em)
			waitEmitted(t, em, 2)
			require.Equal(t, uint64(1), src.Status().Reconnects, "the refused answer ended the session")
		})
	}
}
