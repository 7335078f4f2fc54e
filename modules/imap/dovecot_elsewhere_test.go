package imap_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/platform/task"
)

// Mail another client takes out of the mailbox between its emission and
// its task's completion (a person moves one to Archive, deletes another)
// is not counted as moved by the source: both completions find nothing
// to act on and are completed_again, and the log says so for the
// success as for the dead letter. They were completed_ok and
// completed_failed (the task was in flight here), with no word in the
// log for the success: the status said a mail was processed and moved
// that stayed in Archive.
func TestDovecotMailTakenAwayBeforeCompletionIsNotCountedAsMoved(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Append("INBOX", imaptest.Message("1@away", "order", "x"), imaptest.Message("2@away", "order", "y")))
	core, logs := observer.New(zapcore.InfoLevel)
	src, err := imap.NewSource(dovecotConfig(d, imap.ModePoll), zap.New(core))
	require.NoError(t, err)
	t.Cleanup(func() { _ = src.Close() })
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 2)
	byID := map[string]*task.Task{}
	for _, tk := range em.all() {
		byID[tk.Header(imap.HeaderMessageID)] = tk
	}

	// Another client: mail 1 to Archive, mail 2 deleted.
	c, err := d.Dial()
	require.NoError(t, err)
	require.NoError(t, c.Create("Archive", nil).Wait())
	_, err = c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	uid := func(id string) goimap.UIDSet {
		u, err := strconv.ParseUint(byID[id].Header(imap.HeaderUID), 10, 32)
		require.NoError(t, err)
		return goimap.UIDSetNum(goimap.UID(u))
	}
	_, err = c.Move(uid("1@away"), "Archive").Wait()
	require.NoError(t, err)
	require.NoError(t, c.Store(uid("2@away"), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Close())
	require.NoError(t, c.Expunge().Close())
	require.NoError(t, c.Logout().Wait())

	complete(t, src, byID["1@away"], task.Succeeded)
	complete(t, src, byID["2@away"], task.DeadLettered)
	st := src.Status()
	require.Zero(t, st.CompletedOK, "nothing was flagged or moved")
	require.Zero(t, st.CompletedFailed, "nothing was moved")
	require.EqualValues(t, 2, st.CompletedAgain)
	require.Zero(t, st.InFlight)
	require.Equal(t, 1, dovecotCount(t, d, "Archive"))
	require.Zero(t, dovecotCount(t, d, "Processed"))
	require.Zero(t, dovecotCount(t, d, "Failed"))
	require.Zero(t, dovecotCount(t, d, "INBOX"))
	gone := logs.FilterMessageSnippet("no longer in the mailbox").All()
	require.Len(t, gone, 2, "the success's and the dead letter's")
}

// A completion whose move the server refuses (here a failed folder it
// can never create) is retried; a person who meanwhile takes the mail
// out of the mailbox by hand did what the completion could not: the
// retry finds nothing, and the dead letter is completed_again, its mail
// not said moved. The refused attempt had found the mail, and the retry
// counted it completed_failed, logging it moved to the folder that
// cannot exist.
func TestDovecotMailTakenAwayWhileRetriedIsNotMoved(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Append("INBOX", imaptest.Message("1@stuck", "order", "x")))
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.OnFailure.MoveTo = imap.Ptr("Orders/Failed")
	core, logs := observer.New(zapcore.InfoLevel)
	src, err := imap.NewSource(cfg, zap.New(core))
	require.NoError(t, err)
	t.Cleanup(func() { _ = src.Close() })
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 1)
	tk := em.all()[0]
	require.NoError(t, src.Complete(context.Background(), tk, task.DeadLettered, "bad order"))
	require.Eventually(t, func() bool { return src.Status().CompletionFailures > 0 }, 10*time.Second, 10*time.Millisecond)

	c, err := d.Dial()
	require.NoError(t, err)
	require.NoError(t, c.Create("Archive", nil).Wait())
	_, err = c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	u, err := strconv.ParseUint(tk.Header(imap.HeaderUID), 10, 32)
	require.NoError(t, err)
	_, err = c.Move(goimap.UIDSetNum(goimap.UID(u)), "Archive").Wait()
	require.NoError(t, err)
	require.NoError(t, c.Logout().Wait())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, src.WaitCompletions(ctx))
	st := src.Status()
	require.Zero(t, st.CompletedFailed, "nothing was moved")
	require.EqualValues(t, 1, st.CompletedAgain)
	require.Empty(t, logs.FilterMessageSnippet("message moved after its dead letter").All())
	require.Len(t, logs.FilterMessageSnippet("no longer in the mailbox").All(), 1)
	require.Equal(t, 1, dovecotCount(t, d, "Archive"))
}

// Mail left in the mailbox on purpose (a dead letter without a failed
// folder) is recorded so that no scan emits it again; once it is no
// longer in the mailbox (a person moved or deleted it), a reconcile pass
// forgets it. The record kept every such mail for the life of the
// source: a dead-letter rate in seen-only mode grew it without bound.
func TestDovecotLeftInPlaceForgottenOnceGone(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Append("INBOX", imaptest.Message("1@left", "order", "x"), imaptest.Message("2@left", "order", "y")))
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.OnFailure.MoveTo = imap.Ptr("")
	cfg.Reconcile = 300 * time.Millisecond
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 2)
	byID := map[string]*task.Task{}
	for _, tk := range em.all() {
		byID[tk.Header(imap.HeaderMessageID)] = tk
		complete(t, src, tk, task.DeadLettered)
	}
	require.Equal(t, 2, imap.LeftInPlace(src))

	c, err := d.Dial()
	require.NoError(t, err)
	_, err = c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	u, err := strconv.ParseUint(byID["1@left"].Header(imap.HeaderUID), 10, 32)
	require.NoError(t, err)
	require.NoError(t, c.Store(goimap.UIDSetNum(goimap.UID(u)), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Close())
	require.NoError(t, c.Expunge().Close())
	require.NoError(t, c.Logout().Wait())

	require.Eventually(t, func() bool { return imap.LeftInPlace(src) == 1 }, 10*time.Second, 10*time.Millisecond,
		"the mail deleted is forgotten, the other one kept")
	time.Sleep(700 * time.Millisecond) // two more reconcile passes
	require.Equal(t, 1, imap.LeftInPlace(src))
	require.Equal(t, 2, em.count(), "the mail left in place is not emitted again")
}
