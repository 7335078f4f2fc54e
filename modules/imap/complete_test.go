package imap_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/task"
)

// messageIDs lists the Message-IDs of msgs in order.
func messageIDs(msgs []memserver.Message) []string {
	ids := make([]string, 0, len(msgs))
	for _, m := range msgs {
		ids = append(ids, m.MessageID)
	}
	return ids
}

// After a UIDVALIDITY change a task emitted under the old one is found by
// a Message-ID search, and IMAP's HEADER search matches substrings:
// completing <1@example.com> must move neither <11@example.com> nor a
// different mail that reuses <1@example.com>, none of them emitted.
func TestCompletionByMessageIDMovesOnlyTheSameMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	appendN(t, b.srv, 1, 1)
	b.run(t)
	waitEmitted(t, b.em, 1)
	b.stop() // no scan from here on: nothing else can be emitted
	tk := b.em.all()[0]

	require.NoError(t, b.srv.RecreateMailbox("INBOX")) // new UIDVALIDITY
	appendN(t, b.srv, 1, 1)                            // the message itself, under a new UID
	appendN(t, b.srv, 11, 1)                           // its id is a substring of this one's
	_, err := b.srv.Append("INBOX", imaptest.Message("1@example.com", "order 1 (corrected)", "other"))
	require.NoError(t, err)

	complete(t, b.src, tk, task.Succeeded)
	processed := messages(t, b.srv, "Processed")
	require.Equal(t, []string{"1@example.com"}, messageIDs(processed))
	require.Equal(t, tk.Payload, processed[0].Raw, "the message itself, not the one reusing its id")
	require.Equal(t, []string{"11@example.com", "1@example.com"}, messageIDs(messages(t, b.srv, "INBOX")))
}

// Two different mails that share a Message-ID (a sender reusing ids, a
// corrected order) are two tasks with their own keys, and completing one
// moves only it. The keys are deterministic: after a restart the mail
// left is emitted under the key it had.
func TestMailsSharingAMessageIDAreSeparateTasks(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	first := imaptest.Message("po-42@erp.example", "order", "first attachment")
	second := imaptest.Message("po-42@erp.example", "order (corrected)", "second, different attachment")
	for _, raw := range [][]byte{first, second} {
		_, err := b.srv.Append("INBOX", raw)
		require.NoError(t, err)
	}
	b.run(t)
	waitEmitted(t, b.em, 2)
	tasks := b.em.all()
	require.Equal(t, taskKey("INBOX", "po-42@erp.example", first), tasks[0].Key)
	require.Equal(t, taskKey("INBOX", "po-42@erp.example", second), tasks[1].Key)

	complete(t, b.src, tasks[0], task.Succeeded)
	processed := messages(t, b.srv, "Processed")
	require.Equal(t, []string{"po-42@erp.example"}, messageIDs(processed))
	require.Equal(t, first, processed[0].Raw)
	inbox := messages(t, b.srv, "INBOX")
	require.Equal(t, []string{"po-42@erp.example"}, messageIDs(inbox), "the corrected mail stays until its own task is done")
	require.Equal(t, second, inbox[0].Raw)
	b.stop()

	fresh := newSource(t, b.src.Config())
	em := &fakeEmitter{}
	start(t, fresh, em)
	waitEmitted(t, em, 1)
	require.Equal(t, tasks[1].Key, em.all()[0].Key)
	complete(t, fresh, em.all()[0], task.Succeeded)
	require.Empty(t, messageIDs(messages(t, b.srv, "INBOX")))
	require.Len(t, messageIDs(messages(t, b.srv, "Processed")), 2)
}

// A copy of a message that the scan finds while the message's completion
// is under way (after the completion read the copies it knew of) is
// settled by that completion too: it is neither left in the mailbox
// behind the cursor nor left in the source's bookkeeping.
func TestCopyFoundDuringCompletionIsSettledWithIt(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	moving := make(chan struct{})  // the completion's first MOVE reached the proxy
	release := make(chan struct{}) // let it through
	var held atomic.Bool
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		if _, name, _ := command(line); name == "UID MOVE" && held.CompareAndSwap(false, true) {
			close(moving)
			select {
			case <-release:
			case <-c.Closed():
			}
		}
		return false
	}})
	src := newSource(t, testConfig(p.Host(), p.Port()))
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the source closes
	em := &fakeEmitter{}
	start(t, src, em)

	raw := imaptest.Message("m@example.com", "order", "x")
	_, err := srv.Append("INBOX", raw)
	require.NoError(t, err)
	waitEmitted(t, em, 1)
	tk := em.all()[0]
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- src.Complete(ctx, tk, task.Succeeded, "")
	}()
	select {
	case <-moving:
	case <-time.After(10 * time.Second):
		t.Fatal("the completion never moved the message")
	}

	copyUID, err := srv.Append("INBOX", raw) // a second copy arrives now
	require.NoError(t, err)
	require.Eventually(t, func() bool { return src.Status().LastUID >= uint32(copyUID) }, 10*time.Second, time.Millisecond,
		"the scan passes the copy while the completion is held")
	free()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Complete did not return")
	}
	waitCompletions(t, src)

	require.Empty(t, messageIDs(messages(t, srv, "INBOX")), "the copy is settled with its task")
	require.Len(t, messageIDs(messages(t, srv, "Processed")), 2)
	require.Equal(t, 1, em.count(), "the copy is not a task of its own")
	require.Zero(t, src.Status().InFlight)
	require.Zero(t, imap.PendingCopies(src))
}

// completingEmitter completes every task it is handed, successfully,
// before Emit returns: a worker faster than the source's bookkeeping.
type completingEmitter struct {
	fakeEmitter
	src *imap.Source
}

func (e *completingEmitter) Emit(ctx context.Context, tasks ...*task.Task) error {
	if err := e.fakeEmitter.Emit(ctx, tasks...); err != nil {
		return err
	}
	for _, tk := range tasks {
		if err := e.src.Complete(ctx, tk, task.Succeeded, ""); err != nil {
			return err
		}
	}
	return nil
}

// A task completed before Emit has even returned still settles the
// copies of its message found in the same batch, and leaves nothing in
// flight behind it.
func TestTaskCompletedDuringEmitSettlesItsCopies(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	raw := imaptest.Message("m@example.com", "order", "x")
	for range 2 {
		_, err := b.srv.Append("INBOX", raw)
		require.NoError(t, err)
	}
	appendN(t, b.srv, 1, 1)
	em := &completingEmitter{src: b.src}
	start(t, b.src, em)

	require.Eventually(t, func() bool { return b.src.Status().Emitted == 2 }, 10*time.Second, time.Millisecond)
	require.Equal(t, 2, em.count())
	waitCompletions(t, b.src)
	require.Empty(t, messageIDs(messages(t, b.srv, "INBOX")), "the copy is settled with its task")
	require.Len(t, messageIDs(messages(t, b.srv, "Processed")), 3)
	require.Zero(t, b.src.Status().InFlight)
	require.Zero(t, imap.PendingCopies(b.src))
}

// On a server without MOVE a move is COPY, then STORE \Deleted and
// EXPUNGE. When the COPY is refused (here: the folder was deleted by
// another client after the completion connection had checked it; a full
// quota does the same) the message must stay in the mailbox, and the
// completion is retried until the folder is there again; it must not be
// flagged \Deleted and expunged without its copy.
func TestRefusedCopyWithoutMoveLosesNoMail(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{Caps: goimap.CapSet{goimap.CapIMAP4rev1: {}}}, nil)
	appendN(t, b.srv, 1, 2)
	b.run(t)
	waitEmitted(t, b.em, 2)
	tasks := b.em.all()
	complete(t, b.src, tasks[0], task.Succeeded) // creates Processed; the connection knows it
	require.Equal(t, []string{tasks[0].Header(imap.HeaderMessageID)}, messageIDs(messages(t, b.srv, "Processed")))

	c, err := imapclient.DialInsecure(b.srv.Addr(), nil)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Login(imaptest.Username, imaptest.Password).Wait())
	require.NoError(t, c.Delete("Processed").Wait())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.src.Complete(ctx, tasks[1], task.Succeeded, ""))
	require.NoError(t, b.src.WaitCompletions(ctx))
	require.Empty(t, messages(t, b.srv, "INBOX"))
	require.Equal(t, []string{tasks[1].Header(imap.HeaderMessageID)}, messageIDs(messages(t, b.srv, "Processed")),
		"the message is in the folder, not lost")
}

// A stand-in (an oversized or queue-refused mail, without its content)
// emitted under the old UIDVALIDITY is found by its Message-ID: other
// mails that reuse the id are not moved with it. One of another size is
// told apart by the size the stand-in carries (imap-size); one of the
// same size cannot be told apart, so nothing is moved (the mails stay,
// and the scan under the new UIDVALIDITY emits them again).
func TestStandInAfterUIDValidityChangeMovesOnlyItsMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, func(c *imap.Config) { c.MaxMessageSize = 2000 })
	big := imaptest.Message("big@example.com", "big", strings.Repeat("x", 5000))
	_, err := b.srv.Append("INBOX", big)
	require.NoError(t, err)
	b.run(t)
	waitEmitted(t, b.em, 1)
	b.stop() // no scan from here on
	stand := b.em.all()[0]
	require.Empty(t, stand.Payload)

	require.NoError(t, b.srv.RecreateMailbox("INBOX")) // new UIDVALIDITY
	other := imaptest.Message("big@example.com", "big (corrected)", strings.Repeat("y", 6000))
	for _, raw := range [][]byte{other, big} {
		_, err := b.srv.Append("INBOX", raw)
		require.NoError(t, err)
	}
	complete(t, b.src, stand, task.DeadLettered)
	require.Equal(t, []int64{int64(len(big))}, sizes(messages(t, b.srv, "Failed")), "the stand-in's message, not the one reusing its id")
	require.Equal(t, []int64{int64(len(other))}, sizes(messages(t, b.srv, "INBOX")))

	// Two mails of the stand-in's size with its id: neither is moved.
	require.NoError(t, b.srv.RecreateMailbox("INBOX"))
	twin := imaptest.Message("big@example.com", "big", strings.Repeat("z", 5000))
	require.Len(t, twin, len(big))
	for _, raw := range [][]byte{big, twin} {
		_, err := b.srv.Append("INBOX", raw)
		require.NoError(t, err)
	}
	complete(t, b.src, stand, task.DeadLettered)
	require.Equal(t, []int64{int64(len(big))}, sizes(messages(t, b.srv, "Failed")), "nothing more moved")
	require.Equal(t, []int64{int64(len(big)), int64(len(twin))}, sizes(messages(t, b.srv, "INBOX")))
}

// sizes lists the sizes of msgs in order.
func sizes(msgs []memserver.Message) []int64 {
	out := make([]int64, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.Size)
	}
	return out
}

// A dead letter re-driven once the cause is fixed (the database is back)
// succeeds later: its mail, moved to Failed by the dead letter, moves on
// to Processed, flagged \Seen, instead of staying in Failed while its
// task succeeded. Another mail of the same Message-ID in Failed stays.
func TestRedrivenDeadLetterThatSucceedsMovesItsMailOutOfFailed(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{Mailboxes: []string{"Failed"}}, nil)
	other := imaptest.Message("1@example.com", "order 1", "another mail, same Message-ID")
	_, err := b.srv.Append("Failed", other)
	require.NoError(t, err)
	appendN(t, b.srv, 1, 1)
	b.run(t)
	waitEmitted(t, b.em, 1)
	tk := b.em.all()[0]

	complete(t, b.src, tk, task.DeadLettered)
	require.Empty(t, messages(t, b.srv, "INBOX"))
	require.Len(t, messages(t, b.srv, "Failed"), 2)

	complete(t, b.src, tk, task.Succeeded) // the re-driven task
	processed := messages(t, b.srv, "Processed")
	require.Len(t, processed, 1, "the mail of the task that succeeded is in Processed")
	require.Equal(t, tk.Payload, processed[0].Raw)
	require.True(t, processed[0].HasFlag(goimap.FlagSeen))
	failed := messages(t, b.srv, "Failed")
	require.Len(t, failed, 1)
	require.Equal(t, other, failed[0].Raw, "only the same mail moved")

	complete(t, b.src, tk, task.Succeeded) // idempotent
	require.Len(t, messages(t, b.srv, "Processed"), 1)
	require.Len(t, messages(t, b.srv, "Failed"), 1)
	require.Empty(t, messages(t, b.srv, "INBOX"))
}
