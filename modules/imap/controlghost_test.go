package imap_test

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/task"
)

// A held mail refused alone, beside two mails processed and left in the
// mailbox (\Seen), the first of which the control asks for is one the
// server lists in its search but answers a fetch of with nothing (a bare
// OK: a mail expunged by another client meanwhile, or a server's broken
// item, for good). That answer is no evidence (the held mail's refusals
// are not counted for it), but it did not count against the mail as a
// failed control: the control asked for it again in every session, the
// other mail, returned fine, never asked, and the held mail was never
// given up. It is now chosen after the other: the other mail serves as
// the control, and the held mail is given up, its stand-in emitted.
func TestControlAnsweredWithNothingIsNotAskedAgain(t *testing.T) {
	t.Parallel()
	for _, what := range []string{"metadata", "body"} {
		t.Run(what, func(t *testing.T) {
			t.Parallel()
			controlAnsweredWithNothing(t, what)
		})
	}
}

func controlAnsweredWithNothing(t *testing.T, what string) {
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3) // UID 1: the mail the server refuses
	item := "BODY.PEEK[]"
	if what == "metadata" {
		item = "ENVELOPE"
	}
	var alone atomic.Bool   // UID 1 is all there is to scan
	var ghost atomic.Uint32 // the first mail the control asks for
	var ghostAsked atomic.Int32
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" {
			return false
		}
		set := strings.Fields(rest)[0]
		if uidSetHas(set, 1) && strings.Contains(rest, item) {
			c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
			return true
		}
		// The control asks for the start of a body, whatever the fetch
		// refused (a scan whose search ran before the completion of UID
		// 2 or 3 may still fetch its whole body: not the control).
		if !strings.Contains(rest, "BODY.PEEK[]<0.") || !alone.Load() || strings.ContainsAny(set, ":,") {
			return false
		}
		u, err := strconv.ParseUint(set, 10, 32)
		if err != nil {
			return false
		}
		ghost.CompareAndSwap(0, uint32(u))
		if uint32(u) != ghost.Load() {
			return false
		}
		ghostAsked.Add(1)
		c.Reply(tag + " OK Fetch completed.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.OnSuccess.MoveTo = imap.Ptr("")
	cfg.RefusalSpan = time.Second // not given up while 2 and 3 are still asked for
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 2)
	for _, tk := range em.all()[:2] {
		require.Empty(t, tk.Header(task.HeaderRejected))
		complete(t, src, tk, task.Succeeded)
	}
	alone.Store(true)
	given := func() bool { return em.count() >= 3 }
	if !assert.Eventually(t, given, 15*time.Second, 5*time.Millisecond, "the held mail given up, the other mail serving as the control") {
		t.Fatalf("the mail answered with nothing asked for %d times as the control", ghostAsked.Load())
	}
	standIn := em.all()[2]
	require.Equal(t, "1", standIn.Header(imap.HeaderUID))
	require.Contains(t, standIn.Header(task.HeaderRejected), what+" fetch, refused in")
	// Counted once Emit has returned: the emitter holds the task a moment
	// before.
	require.Eventually(t, func() bool { return src.Status().Refused == 1 }, 10*time.Second, 5*time.Millisecond,
		"the stand-in counted in Status.Refused")
	require.EqualValues(t, 1, ghostAsked.Load(), "the mail answered with nothing asked for once as the control, not again")
}
