package imap_test

import (
	"os"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/platform/task"
)

// The mail store failing as a whole while the INBOX holds mail whose
// envelope Dovecot has in its cache (mail fetched before: here a mail
// processed and left in the INBOX, \Seen) and mail it has not (a backlog
// not fetched yet, or mail an external agent wrote into the maildir):
// Dovecot answers the envelope of the first from its index, and ends the
// connection on that of the others (it must read their files). The
// control asked for the envelope of the cached mail, which came back:
// the connection ended on each mail's metadata alone was counted against
// it, and every mail not fetched yet was given up, one after the other,
// as one the server fails on. A metadata fetch alone that ends the
// connection now counts only once the server returned a mail's content
// in the session: nothing is given up, and once the store is back both
// mails are emitted whole.
func TestDovecotStoreOutageGivesUpNoMailOnItsMetadata(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	for _, id := range []string{"1@cached", "2@store", "3@store"} {
		require.NoError(t, d.Save("INBOX", imaptest.Message(id, "order", id)))
	}
	// 1 processed before, left in the INBOX: its envelope in Dovecot's
	// cache, not that of 2 and 3.
	c, err := d.Dial()
	require.NoError(t, err)
	_, err = c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	_, err = c.Fetch(goimap.UIDSetNum(1), &goimap.FetchOptions{UID: true, RFC822Size: true, Envelope: true, InternalDate: true}).Collect()
	require.NoError(t, err)
	require.NoError(t, c.Store(goimap.UIDSetNum(1), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagSeen}}, nil).Close())
	require.NoError(t, c.Logout().Wait())
	files := maildirFiles(t, d, "INBOX")
	require.Len(t, files, 3)
	modes := map[string]os.FileMode{}
	for _, f := range files {
		fi, err := os.Stat(f)
		require.NoError(t, err)
		modes[f] = fi.Mode().Perm()
		require.NoError(t, os.Chmod(f, 0)) // the store fails
	}

	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.OnSuccess.MoveTo = imap.Ptr("")
	cfg.Reconnect = imap.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	cfg.RefusalSpan = 200 * time.Millisecond
	src, logs := observedSource(t, cfg)
	em := &workerEmitter{src: src}
	start(t, src, em)

	began := time.Now()
	require.Eventually(t, func() bool {
		return em.count() > 0 || src.Status().Reconnects > 4*imap.RefusedSessionsBeforeSetAside &&
			time.Since(began) > 4*cfg.RefusalSpan
	}, 30*time.Second, 10*time.Millisecond)
	require.Zero(t, em.count(), "a good mail given up while the store failed")
	require.Zero(t, src.Status().Refused)
	// The sessions failed on the control asked before the suspects were
	// fetched alone: the error says the connection ended on their metadata.
	alone := lostErrors(logs, "messages alone")
	require.NotEmpty(t, alone)
	for _, msg := range alone {
		require.Contains(t, msg, "the connection having ended on their metadata:")
	}

	for f, mode := range modes {
		require.NoError(t, os.Chmod(f, mode)) // the store back
	}
	require.Eventually(t, func() bool { return em.count() == 2 }, 30*time.Second, 50*time.Millisecond)
	for _, tk := range em.all() {
		require.Empty(t, tk.Header(task.HeaderRejected))
		require.NotEmpty(t, tk.Payload)
	}
	require.Zero(t, src.Status().Refused)
	require.Zero(t, dovecotCount(t, d, "Failed"))
}
