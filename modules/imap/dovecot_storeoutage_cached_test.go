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

// The mail store failing as a whole while the INBOX holds only a mail
// whose envelope Dovecot has in its cache (1, fetched before) and one it
// has not (2): no other mail to ask for as the control. The batch's
// metadata fetch ends the connection (on 2), both are fetched alone the
// next sessions: 1's envelope came back from the index, and that
// counted as the server serving metadata, so the connection ended on
// 2's metadata alone counted against it, and 2, a good mail, was given
// up, and dead-lettered once the store was back. Only a body, which comes from the store, proves
// the server serves: nothing is given up, and once the store is back
// both mails are emitted whole.
func TestDovecotStoreOutageCachedEnvelopeIsNoProof(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	restore := storeOutage(t, d, []string{"1@cached", "2@store"}, 1)

	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Reconnect = imap.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	cfg.RefusalSpan = 200 * time.Millisecond
	src := newSource(t, cfg)
	em := &workerEmitter{src: src}
	start(t, src, em)
	noMailGivenUp(t, src, em, cfg)

	restore()
	storeBack(t, d, src, em, 2)
}

// storeBack waits, the store back, until the INBOX's n mails left it,
// and checks each was emitted whole and moved to Processed: none given
// up (a mail given up during the outage, its stand-in not emitted
// while every session failed, is emitted once the store is back).
func storeBack(t *testing.T, d *dovecottest.Server, src *imap.Source, em *workerEmitter, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		return dovecotCount(t, d, "Processed")+dovecotCount(t, d, "Failed") == n
	}, 30*time.Second, 50*time.Millisecond)
	for _, tk := range em.all() {
		require.Empty(t, tk.Header(task.HeaderRejected), "a good mail given up")
		require.NotEmpty(t, tk.Payload)
	}
	require.Zero(t, src.Status().Refused)
	require.Zero(t, dovecotCount(t, d, "Failed"))
	require.Equal(t, n, dovecotCount(t, d, "Processed"))
}

// storeOutage saves ids into d's INBOX (UIDs from 1), has Dovecot cache
// the metadata of the UIDs cached (as of mail fetched before), and makes
// every mail file unreadable (the store fails, the index fine). It
// returns the function that brings the store back.
func storeOutage(t *testing.T, d *dovecottest.Server, ids []string, cached ...goimap.UID) (restore func()) {
	t.Helper()
	for _, id := range ids {
		require.NoError(t, d.Save("INBOX", imaptest.Message(id, "order", id)))
	}
	c, err := d.Dial()
	require.NoError(t, err)
	_, err = c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	_, err = c.Fetch(goimap.UIDSetNum(cached...), &goimap.FetchOptions{UID: true, RFC822Size: true, Envelope: true, InternalDate: true}).Collect()
	require.NoError(t, err)
	require.NoError(t, c.Logout().Wait())
	files := maildirFiles(t, d, "INBOX")
	require.Len(t, files, len(ids))
	modes := map[string]os.FileMode{}
	for _, f := range files {
		fi, err := os.Stat(f)
		require.NoError(t, err)
		modes[f] = fi.Mode().Perm()
		require.NoError(t, os.Chmod(f, 0))
	}
	return func() {
		for f, mode := range modes {
			require.NoError(t, os.Chmod(f, mode))
		}
	}
}

// noMailGivenUp waits for sessions enough, over a span long enough, to
// give a mail up were the failures counted, and checks none was.
func noMailGivenUp(t *testing.T, src *imap.Source, em *workerEmitter, cfg imap.Config) {
	t.Helper()
	began := time.Now()
	require.Eventually(t, func() bool {
		return em.count() > 0 || src.Status().Reconnects > 4*imap.RefusedSessionsBeforeSetAside &&
			time.Since(began) > 4*cfg.RefusalSpan
	}, 30*time.Second, 10*time.Millisecond)
	require.Zero(t, em.count(), "a good mail given up while the store failed")
	require.Zero(t, src.Status().Refused)
}
