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

// The mail store failing as a whole (every mail file unreadable: a
// disk, a network file system, its permissions), the index fine: Dovecot
// answers metadata from its index, and ends the connection on any body
// asked for (its imap_fetch_failure defaults to disconnect-immediately),
// never saying NO. Each mail fetched alone ended the connection in
// three sessions over RefusalSpan, and was given up as one the server
// fails on: every good mail of the INBOX was dead-lettered, one after
// the other, for a server failing as a whole. A connection ended on a
// mail alone now counts against it only when the server returned other
// mail in the same session: nothing is given up, and once the store is
// back, every mail is emitted whole. The session failing on the control
// asked before mail is fetched alone says the connection ended on their
// bodies (it said "on them" after a metadata fetch, as if it had ended
// on their metadata).
func TestDovecotStoreOutageGivesUpNoMail(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Save("INBOX", imaptest.Message("1@store", "order", "one")))
	require.NoError(t, d.Save("INBOX", imaptest.Message("2@store", "order", "two")))
	require.NoError(t, d.Save("INBOX", imaptest.Message("3@store", "order", "three")))
	// The metadata in Dovecot's index, as that of mail fetched before.
	c, err := d.Dial()
	require.NoError(t, err)
	_, err = c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	_, err = c.Fetch(goimap.UIDSetNum(1, 2, 3), &goimap.FetchOptions{UID: true, RFC822Size: true, Envelope: true, InternalDate: true}).Collect()
	require.NoError(t, err)
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
	cfg.Reconnect = imap.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	cfg.RefusalSpan = 200 * time.Millisecond
	cfg.BatchSize = 2 // 3, not a suspect after the first session, is the control for 1 and 2
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
	// fetched alone: the error says the connection ended on their bodies.
	alone := lostErrors(logs, "messages alone")
	require.NotEmpty(t, alone)
	for _, msg := range alone {
		require.Contains(t, msg, "the connection having ended on their bodies:")
	}

	for f, mode := range modes {
		require.NoError(t, os.Chmod(f, mode)) // the store back
	}
	require.Eventually(t, func() bool { return dovecotCount(t, d, "Processed") == 3 }, 30*time.Second, 50*time.Millisecond)
	for _, tk := range em.all() {
		require.Empty(t, tk.Header(task.HeaderRejected))
		require.NotEmpty(t, tk.Payload)
	}
	require.Zero(t, src.Status().Refused)
	require.Zero(t, dovecotCount(t, d, "Failed"))
}
