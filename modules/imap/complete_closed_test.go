package imap_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/task"
)

// A completion refused after Close (ErrClosed) leaves its mail as it
// was: in flight, emitted again after InFlightTimeout while Run goes on.
// It was marked completing before the refusal, so the reaper left it
// alone: the mail was never emitted again in the process, nor completed.
func TestCompletionRefusedAfterCloseLeavesTheMailToEmitAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, func(c *imap.Config) { c.InFlightTimeout = time.Second })
	appendN(t, b.srv, 1, 1)
	b.run(t)
	waitEmitted(t, b.em, 1)
	require.NoError(t, b.src.Close())
	first := b.em.all()[0]
	require.ErrorIs(t, b.src.Complete(context.Background(), first, task.Succeeded, ""), imap.ErrClosed)

	require.Eventually(t, func() bool { return b.em.count() >= 2 }, 20*time.Second, 10*time.Millisecond,
		"the mail of a refused completion is emitted again")
	require.Equal(t, first.Key, b.em.all()[1].Key)
	require.Zero(t, b.src.Status().CompletionsQueued, "a refused completion is not counted as queued")
	require.Len(t, messages(t, b.srv, "INBOX"), 1)
}

// A completion still queued when Close gives up on it (the server
// refuses the move all along) leaves its mail in flight, emitted again
// after InFlightTimeout while Run goes on, not marked completing for good.
func TestCompletionLeftAtCloseLeavesTheMailToEmitAgain(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, _ := command(line)
		if name == "UID MOVE" || name == "UID STORE" {
			c.Reply(tag + " NO [UNAVAILABLE] Try again later\r\n")
			return true
		}
		return false
	}})
	appendN(t, srv, 1, 1)
	cfg := testConfig(p.Host(), p.Port())
	cfg.InFlightTimeout = time.Second
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 1)
	first := em.all()[0]
	require.NoError(t, src.Complete(context.Background(), first, task.Succeeded, ""))
	require.Eventually(t, func() bool { return src.Status().CompletionFailures > 0 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, src.Close()) // the completion left unapplied

	require.Eventually(t, func() bool { return em.count() >= 2 }, 20*time.Second, 10*time.Millisecond,
		"the mail of a completion left at Close is emitted again")
	require.Equal(t, first.Key, em.all()[1].Key)
	require.Len(t, messages(t, srv, "INBOX"), 1)
}
