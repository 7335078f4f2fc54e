package imap_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// dupBackend is a queue backend as the source's emitter sees it
// (task.Enqueuer), as JetStream answers: a task whose key finished is
// dropped and marked finished (task.MarkFinished) before anything is
// published, a task larger than max is refused for good
// (queue.ErrTooLarge) while the rest of its batch is stored, and failNext
// fails the next batch (the tasks it has not dropped) with that error.
type dupBackend struct {
	mu       sync.Mutex
	finished map[string]task.Outcome // by Message-ID header
	max      int
	failNext error
	handed   map[string]int // by Message-ID header: tasks handed to Enqueue
	stored   map[string]*task.Task
}

func newDupBackend() *dupBackend {
	return &dupBackend{finished: map[string]task.Outcome{}, handed: map[string]int{}, stored: map[string]*task.Task{}}
}

func (b *dupBackend) Enqueue(_ context.Context, tasks ...*task.Task) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	fail := b.failNext
	b.failNext = nil
	var errs []error
	for _, t := range tasks {
		id := t.Header(imap.HeaderMessageID)
		b.handed[id]++
		if o, ok := b.finished[id]; ok {
			task.MarkFinished(t, o, "")
			continue
		}
		switch {
		case fail != nil:
			errs = append(errs, fmt.Errorf("task %s: %w", id, fail))
		case b.max > 0 && len(t.Payload) > b.max:
			errs = append(errs, fmt.Errorf("task %s of %d bytes: %w", id, len(t.Payload), queue.ErrTooLarge))
		default:
			if _, ok := b.stored[t.Key]; !ok {
				b.stored[t.Key] = t.Clone()
			}
		}
	}
	return errors.Join(errs...)
}

func (b *dupBackend) handedOf(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.handed[id]
}

// storedOf returns the stored task of the mail with Message-ID id (nil:
// none), its stand-in when rejected says so.
func (b *dupBackend) storedOf(id string, rejected bool) *task.Task {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.stored {
		if r := t.Header(task.HeaderRejected) != ""; t.Header(imap.HeaderMessageID) == id && r == rejected {
			return t.Clone()
		}
	}
	return nil
}

// A mail whose task the emitter completed during an Emit that failed (a
// duplicate of a task that finished, told at once) stays in flight until
// that completion is applied: the scan after the failure does not emit
// it again, and it is told its outcome once.
func TestEmitFailureKeepsACompletingMailInFlight(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	release := make(chan struct{})
	var once sync.Once
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		if _, name, _ := command(line); name == "UID MOVE" {
			select { // the completion's move waits for the test
			case <-release:
			case <-c.Closed():
			}
		}
		return false
	}})
	defer once.Do(func() { close(release) })
	_, err := srv.Append("INBOX", imaptest.Message("done@example.com", "handled before", "x"))
	require.NoError(t, err)
	_, err = srv.Append("INBOX", imaptest.Message("new@example.com", "new", "y"))
	require.NoError(t, err)

	src := newSource(t, testConfig(p.Host(), p.Port()))
	be := newDupBackend()
	be.finished["done@example.com"] = task.Succeeded
	be.failNext = errors.New("nats: timeout")
	em := source.NewEmitter(src, be)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.ErrorIs(t, src.Run(ctx, em), imap.ErrEmit)
	require.Equal(t, uint64(1), src.Status().CompletionsQueued, "the finished duplicate is told at once")

	// The supervisor restarts Run; the completion's move is still held.
	start(t, src, em)
	require.Eventually(t, func() bool { return be.storedOf("new@example.com", false) != nil }, 30*time.Second, 5*time.Millisecond)

	once.Do(func() { close(release) })
	waitCompletions(t, src)
	st := src.Status()
	require.Equal(t, uint64(1), st.CompletionsQueued)
	require.Equal(t, uint64(1), st.CompletedOK)
	require.Zero(t, st.CompletedAgain, "told once")
	require.Equal(t, 1, be.handedOf("done@example.com"), "a mail whose completion is queued is not emitted again")
	require.Equal(t, []string{"done@example.com"}, messageIDs(messages(t, srv, "Processed")))

	complete(t, src, be.storedOf("new@example.com", false), task.Succeeded)
	require.Empty(t, messages(t, srv, "INBOX"))
	require.Len(t, messages(t, srv, "Processed"), 2)
	st = src.Status()
	require.Zero(t, st.InFlight)
	require.Zero(t, st.CompletedAgain)
	require.Equal(t, uint64(2), st.CompletedOK)
}

// A batch the queue refuses as too large is emitted again task by task;
// a task of it that the emitter completed meanwhile (a duplicate of one
// that finished) is not among them: it is told its outcome once.
func TestTooLargeBatchDoesNotTellAFinishedDuplicateTwice(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	_, err := b.srv.Append("INBOX", imaptest.Message("done@example.com", "handled before", "x"))
	require.NoError(t, err)
	_, err = b.srv.Append("INBOX", imaptest.Message("big@example.com", "big", strings.Repeat("z", 4000)))
	require.NoError(t, err)
	_, err = b.srv.Append("INBOX", imaptest.Message("new@example.com", "new", "y"))
	require.NoError(t, err)
	be := newDupBackend()
	be.finished["done@example.com"] = task.Succeeded
	be.max = 2000
	start(t, b.src, source.NewEmitter(b.src, be))

	require.Eventually(t, func() bool {
		return be.storedOf("big@example.com", true) != nil && be.storedOf("new@example.com", false) != nil
	}, 30*time.Second, 5*time.Millisecond)
	waitCompletions(t, b.src)
	st := b.src.Status()
	require.Equal(t, uint64(1), st.CompletionsQueued)
	require.Zero(t, st.CompletedAgain, "told once")
	require.Equal(t, 1, be.handedOf("done@example.com"), "the finished duplicate is not emitted again on its own")
	require.Equal(t, uint64(1), st.Rejected)

	complete(t, b.src, be.storedOf("new@example.com", false), task.Succeeded)
	complete(t, b.src, be.storedOf("big@example.com", true), task.DeadLettered)
	require.Empty(t, messages(t, b.srv, "INBOX"))
	require.ElementsMatch(t, []string{"done@example.com", "new@example.com"}, messageIDs(messages(t, b.srv, "Processed")))
	require.Equal(t, []string{"big@example.com"}, messageIDs(messages(t, b.srv, imap.DefaultFailed)))
	st = b.src.Status()
	require.Zero(t, st.InFlight)
	require.Zero(t, st.CompletedAgain)
	require.Equal(t, uint64(2), st.CompletedOK)
	require.Equal(t, uint64(1), st.CompletedFailed)
}
