package imap_test

import (
	"context"
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

// A scan whose search ran before a completion was applied, and that
// fetches the completed mail after it (a rescan from below the cursor:
// here from a held mail the server refuses), does not emit that mail
// again: it was emitted a second time, a task told twice, because it
// was no longer in flight once its completion ended. (The mail processed
// stays in the mailbox, \Seen; a mail moved is so too when the fetch
// returns it before the move.)
func TestMailCompletedDuringAScanIsNotEmittedAgain(t *testing.T) {
	t.Parallel()
	completedDuringAScan(t)
}

func completedDuringAScan(t *testing.T) {
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 2) // UID 1: the mail the server refuses, held
	var armed atomic.Bool
	held := make(chan struct{}, 1)
	release := make(chan struct{})
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") {
			return false
		}
		set := strings.Fields(rest)[0]
		if uidSetHas(set, 1) {
			c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
			return true
		}
		if uidSetHas(set, 2) && armed.CompareAndSwap(true, false) {
			held <- struct{}{}
			select { // the fetch reaches the server after the completion
			case <-release:
			case <-c.Closed():
			}
		}
		return false
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.OnSuccess.MoveTo = imap.Ptr("")
	cfg.RefusalSpan = time.Hour // UID 1 stays held: every scan starts from it
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 1)
	first := em.all()[0]
	require.Equal(t, "2", first.Header(imap.HeaderUID))

	armed.Store(true)
	select {
	case <-held: // a scan searched and found UID 2, still in flight
	case <-time.After(20 * time.Second):
		t.Fatal("no scan fetched the in-flight mail again")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, src.Complete(ctx, first, task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx))
	close(release)

	// A few more scans: the mail is not emitted again.
	polls := src.Status().LastPoll
	require.Eventually(t, func() bool { return src.Status().LastPoll.After(polls.Add(time.Second)) }, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, 1, em.keys()[first.Key], "the completed mail emitted again")
	require.EqualValues(t, 1, src.Status().CompletedOK)
	require.Zero(t, src.Status().CompletedAgain)
}
