package imap_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/platform/task"
)

// The mail store failing for a few seconds while a completion looks for
// its mail by content (its UIDVALIDITY stale, as after the mailbox was
// rebuilt; a dead letter re-driven from the failed folder and a copy
// looked for after a dropped COPY look the same way): Dovecot ends the
// connection on every body. Each fetch of the mail alone that ended the
// connection was counted against it, with no proof that the server
// served other mail, and after RefusedSessionsBeforeSetAside of them
// over Reconnect.Max the mail was set aside for the life of the source:
// not found, so left in the INBOX, to be emitted and handled again (a
// second order). A drop now counts only once the completion connection
// got the body of another mail: the other mail's body fails too, nothing
// is counted, and once the store is back the mail is found and moved.
func TestDovecotStoreOutageDuringALookupSetsNothingAside(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	// UID 1: the task's mail, its envelope cached (fetched before); 2:
	// another mail, to prove against.
	mail := imaptest.Message("1@lookup", "order", "1@lookup")
	require.NoError(t, d.Save("INBOX", mail))
	require.NoError(t, d.Save("INBOX", imaptest.Message("2@other", "order", "2@other")))
	// Dovecot has the Message-ID header of the mails in its cache (looked
	// for before): the search is answered while the store fails, the
	// envelope and the bodies are not.
	c, err := d.Dial()
	require.NoError(t, err)
	_, err = c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	_, err = c.UIDSearch(&goimap.SearchCriteria{Header: []goimap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: "1@lookup"}}}, nil).Wait()
	require.NoError(t, err)
	require.NoError(t, c.Logout().Wait())
	restore := storeFails(t, d, "INBOX")

	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Reconnect = imap.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	cfg.RefusalSpan = time.Minute // the outage is shorter (see completion_poison.go)
	src := newSource(t, cfg)      // not run: only its completions
	validity := uidValidity(t, d, "INBOX")
	tk := &task.Task{Key: "k", Payload: mail, Headers: map[string]string{
		imap.HeaderMessageID: "1@lookup", imap.HeaderUID: "1", imap.HeaderUIDValidity: strconv.FormatUint(uint64(validity)+1, 10),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))

	// Attempts enough, over a span long enough, to set the mail aside
	// were the drops counted.
	began := time.Now()
	require.Eventually(t, func() bool {
		st := src.Status()
		return st.CompletionSetAside > 0 ||
			st.CompletionFailures > 4*imap.RefusedSessionsBeforeSetAside && time.Since(began) > 10*cfg.Reconnect.Max
	}, 20*time.Second, 10*time.Millisecond)
	require.Zero(t, src.Status().CompletionSetAside, "the mail set aside while the store failed")
	require.Zero(t, dovecotCount(t, d, "Processed"))

	restore()
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())
	ids, err := d.MessageIDs("Processed")
	require.NoError(t, err)
	require.Equal(t, []string{"1@lookup"}, ids, "the mail found and moved once the store is back")
	ids, err = d.MessageIDs("INBOX")
	require.NoError(t, err)
	require.Equal(t, []string{"2@other"}, ids)
	require.EqualValues(t, 1, src.Status().CompletedOK)
	require.Zero(t, src.Status().CompletionSetAside)
}

// As above, for a dead letter re-driven and then successful: its mail is
// looked for by content in the failed folder, whose store fails for a
// few seconds. The mail was set aside there, not found, and stayed in
// Failed though its task succeeded. It is moved to Processed once the
// store is back.
func TestDovecotStoreOutageDuringARedriveSetsNothingAside(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Save("INBOX", imaptest.Message("1@redrive", "order", "1@redrive")))
	require.NoError(t, d.Save("INBOX", imaptest.Message("2@other", "order", "2@other")))
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Reconnect = imap.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	cfg.RefusalSpan = time.Minute // the outage is shorter (see completion_poison.go)
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 2)
	for _, tk := range em.all() {
		complete(t, src, tk, task.DeadLettered)
	}
	require.Equal(t, 2, dovecotCount(t, d, "Failed"))
	var redriven *task.Task
	for _, tk := range em.all() {
		if tk.Header(imap.HeaderMessageID) == "1@redrive" {
			redriven = tk
		}
	}
	require.NotNil(t, redriven)
	// The Message-ID header in Dovecot's cache: the search is answered
	// while the store fails, the envelopes and bodies are not.
	c, err := d.Dial()
	require.NoError(t, err)
	_, err = c.Select("Failed", nil).Wait()
	require.NoError(t, err)
	_, err = c.UIDSearch(&goimap.SearchCriteria{Header: []goimap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: "1@redrive"}}}, nil).Wait()
	require.NoError(t, err)
	require.NoError(t, c.Logout().Wait())
	restore := storeFails(t, d, "Failed")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	failures := src.Status().CompletionFailures
	require.NoError(t, src.Complete(ctx, redriven, task.Succeeded, ""))
	began := time.Now()
	require.Eventually(t, func() bool {
		st := src.Status()
		return st.CompletionSetAside > 0 || st.CompletionsPending == 0 && st.CompletedOK > 0 ||
			st.CompletionFailures > failures+4*imap.RefusedSessionsBeforeSetAside && time.Since(began) > 10*cfg.Reconnect.Max
	}, 20*time.Second, 10*time.Millisecond)
	require.Zero(t, src.Status().CompletionSetAside, "the mail set aside while the store failed")

	restore()
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())
	ids, err := d.MessageIDs("Processed")
	require.NoError(t, err)
	require.Equal(t, []string{"1@redrive"}, ids, "the re-driven mail moved out of Failed once the store is back")
	ids, err = d.MessageIDs("Failed")
	require.NoError(t, err)
	require.Equal(t, []string{"2@other"}, ids)
	require.Zero(t, src.Status().CompletionSetAside)
}

// uidValidity is box's UIDVALIDITY on d.
func uidValidity(t *testing.T, d *dovecottest.Server, box string) uint32 {
	t.Helper()
	c, err := d.Dial()
	require.NoError(t, err)
	defer c.Close()
	sel, err := c.Select(box, nil).Wait()
	require.NoError(t, err)
	require.NoError(t, c.Logout().Wait())
	return sel.UIDValidity
}

// storeFails makes every mail file of box on d unreadable (the store
// fails, the index fine) and returns the function that brings the store
// back.
func storeFails(t *testing.T, d *dovecottest.Server, box string) (restore func()) {
	t.Helper()
	modes := map[string]os.FileMode{}
	for _, f := range maildirFiles(t, d, box) {
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
