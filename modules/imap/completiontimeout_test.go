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

// A batch of completions that needs longer than a batch may take (here,
// after a UIDVALIDITY change, each mail looked for by a Message-ID search
// the server answers slowly) is applied in smaller batches: cut at its
// deadline and retried whole, it was cut again each time, every mail of
// it left where it was for ever.
func TestCompletionBatchCutByItsDeadlineIsSplit(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	var completing atomic.Bool
	queued := make(chan struct{})
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		_, name, rest := command(line)
		if name == "SELECT" && completing.Load() {
			select { // the first batch waits until every completion is queued
			case <-queued:
			case <-c.Closed():
			}
		}
		if name == "UID SEARCH" && strings.Contains(strings.ToUpper(rest), "HEADER") {
			select { // a slow server: 5 of them take longer than the batch may
			case <-time.After(400 * time.Millisecond):
			case <-c.Closed():
			}
		}
		return false
	}})
	const n = 16
	appendN(t, srv, 1, n)
	cfg := testConfig(p.Host(), p.Port())
	cfg.DialTimeout = time.Second
	src := newSource(t, cfg)
	imap.SetCompletionTimeout(src, time.Second) // a batch may take 2 s
	em := &fakeEmitter{}
	_, stop := start(t, src, em)
	waitEmitted(t, em, n)
	stop()
	completing.Store(true)
	require.NoError(t, srv.RecreateMailbox("INBOX")) // new UIDVALIDITY: found by content
	appendN(t, srv, 1, n)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tk := range em.all() {
		require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
	}
	close(queued) // one of the first two batches holds at least 8
	require.NoError(t, src.WaitCompletions(ctx), "completions applied")
	require.Empty(t, messages(t, srv, "INBOX"))
	require.Len(t, messages(t, srv, "Processed"), n)
	require.NotZero(t, src.Status().CompletionFailures, "a batch was cut")
}
