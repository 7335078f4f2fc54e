package imap_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/platform/task"
)

// A task dead-lettered while the server was down, then re-driven and
// successful before it came back: both completions wait in the queue,
// and the mail ends in Processed, as when they are applied apart. (They
// were applied in one batch, which looked for the success's mail before
// the dead letter's moved it, so found it in the INBOX and left it for
// the dead letter's move: the mail ended in Failed, its task a success.)
// A third completion told again changes nothing.
func TestDovecotSuccessAfterQueuedDeadLetter(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Append("INBOX", imaptest.Message("1@twice", "order", "x"), imaptest.Message("2@twice", "order", "y")))
	src := newSource(t, dovecotConfig(d, imap.ModePoll))
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 2)
	byID := map[string]*task.Task{}
	for _, tk := range em.all() {
		byID[tk.Header(imap.HeaderMessageID)] = tk
	}

	d.Stop()
	ctx := context.Background()
	require.NoError(t, src.Complete(ctx, byID["1@twice"], task.DeadLettered, "bad order"))
	require.NoError(t, src.Complete(ctx, byID["2@twice"], task.Succeeded, ""))
	require.NoError(t, src.Complete(ctx, byID["1@twice"], task.Succeeded, ""))
	require.NoError(t, src.Complete(ctx, byID["1@twice"], task.Succeeded, ""))
	require.Eventually(t, func() bool { return src.Status().CompletionFailures > 0 }, 20*time.Second, 10*time.Millisecond)
	d.Resume()
	waitCompletions(t, src)

	ids, err := d.MessageIDs("Processed")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"1@twice", "2@twice"}, ids)
	require.Zero(t, dovecotCount(t, d, "Failed"))
	require.Zero(t, dovecotCount(t, d, "INBOX"))
}

// A dead letter told after the task's success (its outcome told twice,
// out of order) leaves the mail in Processed, and the log says that its
// mail was not moved: it said "message moved after its dead letter",
// moved_to Failed, of a mail that stayed in Processed. A dead letter
// without a failed folder says that its mail is left in the mailbox.
func TestDovecotDeadLetterToldAfterTheSuccessSaysNothingMoved(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Append("INBOX", imaptest.Message("1@late-dead", "order", "x")))
	core, logs := observer.New(zapcore.InfoLevel)
	src, err := imap.NewSource(dovecotConfig(d, imap.ModePoll), zap.New(core))
	require.NoError(t, err)
	t.Cleanup(func() { _ = src.Close() })
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 1)
	tk := em.all()[0]
	complete(t, src, tk, task.Succeeded)
	complete(t, src, tk, task.DeadLettered)
	ids, err := d.MessageIDs("Processed")
	require.NoError(t, err)
	require.Equal(t, []string{"1@late-dead"}, ids)
	require.Zero(t, dovecotCount(t, d, "Failed"))
	require.Zero(t, logs.FilterMessage("message moved after its dead letter").Len(), "nothing was moved")
	require.Equal(t, 1, logs.FilterMessageSnippet("no longer in the mailbox: not moved").Len())

	empty := ""
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.OnFailure.MoveTo = &empty
	kept, err := imap.NewSource(cfg, zap.New(core))
	require.NoError(t, err)
	t.Cleanup(func() { _ = kept.Close() })
	complete(t, kept, tk, task.DeadLettered)
	require.Zero(t, logs.FilterMessage("message moved after its dead letter").Len(), "nothing was moved")
	require.Equal(t, 1, logs.FilterMessageSnippet("left in the mailbox after its dead letter").Len())
}

// A dead letter whose move the server refuses (a failed folder it will
// not create) is retried with its own back-off, and the success told
// after it, once the task was re-driven, is applied meanwhile: the mail
// moves to Processed; the dead letter's retry then finds no mail to move.
func TestDovecotRefusedDeadLetterDoesNotHoldUpTheSuccess(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Append("INBOX", imaptest.Message("1@refused-dead", "order", "x")))
	cfg := dovecotConfig(d, imap.ModePoll)
	bad := "~Failed" // Dovecot refuses a mailbox name that begins with ~
	cfg.OnFailure.MoveTo = &bad
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 1)
	tk := em.all()[0]
	ctx := context.Background()
	require.NoError(t, src.Complete(ctx, tk, task.DeadLettered, "bad order"))
	require.Eventually(t, func() bool { return src.Status().CompletionFailures > 0 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
	require.Eventually(t, func() bool { return dovecotCount(t, d, "Processed") == 1 }, 10*time.Second, 20*time.Millisecond,
		"status %+v", src.Status())
	waitCompletions(t, src)
	require.Zero(t, dovecotCount(t, d, "INBOX"))
}

// A dead letter and its task's success both still queued when the
// source closes: Close's last attempt applies the success too, after the
// dead letter, and the mail ends in Processed (it took only one
// completion per task, and the mail stayed in Failed).
func TestDovecotCloseAppliesASuccessQueuedAfterItsDeadLetter(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Append("INBOX", imaptest.Message("1@close", "order", "x")))
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Reconnect = imap.Backoff{Initial: 20 * time.Second, Max: 20 * time.Second} // no retry before Close
	src, err := imap.NewSource(cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = src.Close() })
	em := &fakeEmitter{}
	_, stop := start(t, src, em)
	waitEmitted(t, em, 1)
	stop()

	d.Stop()
	tk := em.all()[0]
	ctx := context.Background()
	require.NoError(t, src.Complete(ctx, tk, task.DeadLettered, "bad order"))
	require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
	require.Eventually(t, func() bool { return src.Status().CompletionFailures > 0 }, 10*time.Second, 10*time.Millisecond)
	d.Resume()
	require.NoError(t, src.Close())
	ids, err := d.MessageIDs("Processed")
	require.NoError(t, err)
	require.Equal(t, []string{"1@close"}, ids)
	require.Zero(t, dovecotCount(t, d, "Failed"))
}

// A task's success told twice moves its mail once and counts once:
// completed_ok counted each telling (the pilot's demo summary, which
// waits for completed_ok+completed_failed to reach its mail count, could
// report every mail processed early). The second is completed_again.
func TestDovecotSuccessToldTwiceCountsOnce(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	require.NoError(t, d.Append("INBOX", imaptest.Message("1@told-twice", "order", "x"), imaptest.Message("2@told-twice", "order", "y")))
	src := newSource(t, dovecotConfig(d, imap.ModePoll))
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 2)
	first := em.all()[0]
	complete(t, src, first, task.Succeeded)
	complete(t, src, first, task.Succeeded)
	complete(t, src, first, task.DeadLettered)
	st := src.Status()
	require.EqualValues(t, 1, st.CompletedOK)
	require.Zero(t, st.CompletedFailed)
	require.EqualValues(t, 2, st.CompletedAgain)
	require.EqualValues(t, 1, st.InFlight)
	require.Equal(t, 1, dovecotCount(t, d, "Processed"))
	require.Equal(t, 1, dovecotCount(t, d, "INBOX"))
	require.Zero(t, dovecotCount(t, d, "Failed"))
}
