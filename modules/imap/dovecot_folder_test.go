package imap_test

import (
	"context"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/platform/task"
)

// Processed that exists only as the parent of a subfolder (someone made
// Processed.2024 for last year's mail first): LIST shows the name, as
// \Noselect, and a MOVE to it fails with NO [TRYCREATE]. The completion
// creates the folder and moves the mail, instead of taking the \Noselect
// name for the folder and retrying the MOVE forever.
func TestDovecotFolderThatIsOnlyAParentIsCreated(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	c, err := d.Dial()
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Create("Processed.2024", nil).Wait())
	list, err := c.List("", "Processed", nil).Collect()
	require.NoError(t, err)
	require.Len(t, list, 1, "LIST shows the parent's name")
	require.Contains(t, list[0].Attrs, goimap.MailboxAttrNoSelect)

	require.NoError(t, d.Append("INBOX", imaptest.Message("1@parent-folder", "order", "x")))
	src := newSource(t, dovecotConfig(d, imap.ModePoll))
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, src.Complete(ctx, em.all()[0], task.Succeeded, ""))
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())
	ids, err := d.MessageIDs("Processed")
	require.NoError(t, err)
	require.Equal(t, []string{"1@parent-folder"}, ids)
	require.Zero(t, dovecotCount(t, d, "INBOX"))
	require.Zero(t, src.Status().CompletionFailures)
}

// On Dovecot too, the mail of a dead letter re-driven and then successful
// moves from Failed to Processed, and the completion connection selects
// the INBOX again: later mail is still completed there.
func TestDovecotRedrivenSuccessMovesTheMailOutOfFailed(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Append("INBOX", imaptest.Message("1@redriven", "order", "x")))
	src := newSource(t, dovecotConfig(d, imap.ModePoll))
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 1)
	complete(t, src, em.all()[0], task.DeadLettered)
	ids, err := d.MessageIDs("Failed")
	require.NoError(t, err)
	require.Equal(t, []string{"1@redriven"}, ids)

	complete(t, src, em.all()[0], task.Succeeded)
	require.Zero(t, dovecotCount(t, d, "Failed"))
	ids, err = d.MessageIDs("Processed")
	require.NoError(t, err)
	require.Equal(t, []string{"1@redriven"}, ids)

	require.NoError(t, d.Save("INBOX", imaptest.Message("2@redriven", "order", "x")))
	waitEmitted(t, em, 2)
	complete(t, src, em.all()[1], task.Succeeded)
	require.Zero(t, dovecotCount(t, d, "INBOX"))
	require.Equal(t, 2, dovecotCount(t, d, "Processed"))
	require.Zero(t, src.Status().CompletionFailures)
}

// Processed deleted by another client while the source runs, after its
// completion connection created it: the next completion creates it again
// and moves its mail there, at the first attempt; none is lost or left
// in the INBOX. The first failed once on NO [TRYCREATE] (counted in
// CompletionFailures) before the folder was created.
func TestDovecotProcessedDeletedWhileRunningIsCreatedAgain(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Append("INBOX", imaptest.Message("1@gone-folder", "order", "x")))
	src := newSource(t, dovecotConfig(d, imap.ModePoll))
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 1)
	complete(t, src, em.all()[0], task.Succeeded)
	require.Equal(t, 1, dovecotCount(t, d, "Processed"))

	c, err := d.Dial()
	require.NoError(t, err)
	require.NoError(t, c.Delete("Processed").Wait())
	require.NoError(t, c.Logout().Wait())
	var msgs [][]byte
	for _, id := range []string{"2@gone-folder", "3@gone-folder", "4@gone-folder"} {
		msgs = append(msgs, imaptest.Message(id, "order", "x"))
	}
	require.NoError(t, d.Append("INBOX", msgs...))
	waitEmitted(t, em, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tk := range em.all()[1:] {
		require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
	}
	require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())
	ids, err := d.MessageIDs("Processed")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"2@gone-folder", "3@gone-folder", "4@gone-folder"}, ids)
	require.Zero(t, dovecotCount(t, d, "INBOX"))
	st := src.Status()
	require.Zero(t, st.CompletionFailures, "last error %q", st.LastCompletionError)
}

// Seen-only mode (on_success.move_to ""): the mail of a dead letter
// re-driven and then successful ends where a success puts it, back in
// the INBOX and flagged \Seen, and is not emitted again. It stayed in
// Failed: the success's completion did not look there.
func TestDovecotSeenOnlyRedrivenSuccess(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Append("INBOX", imaptest.Message("1@seen-only", "order", "x")))
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.OnSuccess.MoveTo = imap.Ptr("")
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 1)
	complete(t, src, em.all()[0], task.DeadLettered)
	ids, err := d.MessageIDs("Failed")
	require.NoError(t, err)
	require.Equal(t, []string{"1@seen-only"}, ids)

	complete(t, src, em.all()[0], task.Succeeded)
	require.Zero(t, dovecotCount(t, d, "Failed"))
	c, err := d.Dial()
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Select("INBOX", &goimap.SelectOptions{ReadOnly: true}).Wait()
	require.NoError(t, err)
	data, err := c.UIDSearch(&goimap.SearchCriteria{Flag: []goimap.Flag{goimap.FlagSeen}}, nil).Wait()
	require.NoError(t, err)
	require.Len(t, data.AllUIDs(), 1, "the mail is back in the INBOX, seen")
	ids, err = d.MessageIDs("INBOX")
	require.NoError(t, err)
	require.Equal(t, []string{"1@seen-only"}, ids)
	time.Sleep(5 * cfg.PollInterval)
	require.Equal(t, 1, em.count(), "a seen mail is not emitted again")
	st := src.Status()
	require.Zero(t, st.CompletionFailures)
	require.EqualValues(t, 1, st.CompletedOK)
	require.EqualValues(t, 1, st.CompletedFailed)
}

// A failed folder the server can never create (Dovecot's separator is
// ".", and it refuses "/" in a name with NO [CANNOT]) holds up only the
// dead letters, whose move cannot be made: they are retried, and the
// error says why. A success applied in the same batch was retried with
// them for ever: applied again alone, it found its mail gone from the
// INBOX (it had moved it to Processed) and looked for it in the failed
// folder, whose SELECT the server refused as well. The success was never
// counted, its completion stayed pending, and WaitCompletions waited.
func TestDovecotUncreatableFailedFolderHoldsOnlyDeadLetters(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Append("INBOX", imaptest.Message("1@cannot", "order", "x"), imaptest.Message("2@cannot", "order", "y")))
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.OnFailure.MoveTo = imap.Ptr("Orders/Failed")
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 2)
	byID := map[string]*task.Task{}
	for _, tk := range em.all() {
		byID[tk.Header(imap.HeaderMessageID)] = tk
	}

	d.Stop() // both completions wait, and are applied in one batch
	ctx := context.Background()
	require.NoError(t, src.Complete(ctx, byID["1@cannot"], task.Succeeded, ""))
	require.NoError(t, src.Complete(ctx, byID["2@cannot"], task.DeadLettered, "bad order"))
	require.Eventually(t, func() bool { return src.Status().CompletionFailures > 0 }, 20*time.Second, 10*time.Millisecond)
	d.Resume()

	require.Eventually(t, func() bool { return src.Status().CompletedOK == 1 }, 10*time.Second, 10*time.Millisecond,
		"the success is applied and counted")
	ids, err := d.MessageIDs("Processed")
	require.NoError(t, err)
	require.Equal(t, []string{"1@cannot"}, ids)
	ids, err = d.MessageIDs("INBOX")
	require.NoError(t, err)
	require.Equal(t, []string{"2@cannot"}, ids, "the dead letter's mail stays until its folder can be made")
	st := src.Status()
	require.Equal(t, 1, st.CompletionsPending, "the dead letter is retried")
	require.Contains(t, st.LastCompletionError, `create "Orders/Failed"`)
	require.Zero(t, st.CompletedFailed)
}
