package imap_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
