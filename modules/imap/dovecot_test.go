package imap_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/platform/task"
)

// The suite against a real Dovecot 2.3 (PLBA_TEST_DOVECOT=1, package
// dovecot-imapd): what the in-memory server cannot show, such as a
// session that sees new mail only once it syncs.

func dovecotConfig(d *dovecottest.Server, mode imap.Mode) imap.Config {
	return imap.Config{
		Host: d.Host(), Port: d.Port(), TLS: imap.TLSNone,
		Username: dovecottest.Username, Password: dovecottest.Password,
		Mode: mode, PollInterval: 200 * time.Millisecond, Reconcile: time.Minute,
		Queue: "mail", Kind: "mail.received",
		Reconnect:   imap.Backoff{Initial: 100 * time.Millisecond, Max: time.Second},
		RefusalSpan: time.Second,
		DialTimeout: 5 * time.Second,
	}
}

// workerEmitter plays the queue and the worker pool: each task emitted is
// "handled" at once by its own goroutine, which reports the success to
// the source, as the pool does, or, for a stand-in (task.Rejected), its
// dead letter with the stand-in's reason.
type workerEmitter struct {
	fakeEmitter
	src *imap.Source
	wg  sync.WaitGroup
}

func (e *workerEmitter) Emit(ctx context.Context, tasks ...*task.Task) error {
	if err := e.fakeEmitter.Emit(ctx, tasks...); err != nil {
		return err
	}
	for _, tk := range tasks {
		e.wg.Add(1)
		go func() { // owned by the test: it waits for wg
			defer e.wg.Done()
			if reason := tk.Header(task.HeaderRejected); reason != "" {
				// A stand-in: the pool dead-letters it with its reason.
				_ = e.src.Complete(context.Background(), tk, task.DeadLettered, reason)
				return
			}
			_ = e.src.Complete(context.Background(), tk, task.Succeeded, "")
		}()
	}
	return nil
}

func dovecotCount(t *testing.T, d *dovecottest.Server, box string) int {
	t.Helper()
	n, err := d.Count(box)
	require.NoError(t, err)
	return n
}

// Mail delivered one by one (doveadm save, as a delivery agent does)
// while the source idles or polls is every one emitted once, and moved to
// Processed: the completion session syncs before it looks for a message
// the watching session found (issue 10: 16 of 16 stayed in INBOX).
func TestDovecotMailDeliveredOneByOneIsStoredAndMoved(t *testing.T) {
	for _, mode := range []imap.Mode{imap.ModeIdle, imap.ModePoll} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			d := dovecottest.Start(t)
			src := newSource(t, dovecotConfig(d, mode))
			em := &workerEmitter{src: src}
			start(t, src, em)
			require.Eventually(t, func() bool { return src.Status().Connected }, 10*time.Second, 10*time.Millisecond)

			const n = 16
			for i := range n {
				require.NoError(t, d.Save("INBOX", imaptest.Message(fmt.Sprintf("%d@one-by-one", i), "order", "x")))
				time.Sleep(150 * time.Millisecond)
			}
			require.Eventually(t, func() bool { return dovecotCount(t, d, "Processed") == n }, 30*time.Second, 50*time.Millisecond,
				"every mail moved to Processed; status %+v", src.Status())
			em.wg.Wait()
			waitCompletions(t, src)
			require.Zero(t, dovecotCount(t, d, "INBOX"))
			require.Equal(t, n, em.count(), "each mail emitted once")
			require.Len(t, em.keys(), n)
			st := src.Status()
			require.EqualValues(t, n, st.CompletedOK)
			require.Zero(t, st.InFlight)
		})
	}
}

// A mail the queue refuses for good (larger than its max payload) is
// replaced by its dead-letter stand-in with the reason, moves to Failed
// once dead-lettered, and the mail after it flows.
func TestDovecotMailTooLargeForTheQueue(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	src := newSource(t, dovecotConfig(d, imap.ModeIdle))
	src.SetQueueMaxPayload(8 << 20)
	big := imaptest.Message("big@too-large", "order", strings.Repeat("x", 9_542_000))
	require.NoError(t, d.Append("INBOX", big, imaptest.Message("small@too-large", "order", "x")))
	em := &tooLargeEmitter{max: 8 << 20}
	start(t, src, em)
	waitEmitted(t, &em.fakeEmitter, 2)

	var stand *task.Task
	for _, tk := range em.all() {
		if tk.Header(imap.HeaderMessageID) == "big@too-large" {
			stand = tk
		}
	}
	require.NotNil(t, stand)
	require.Equal(t, "message of 9.1 MiB exceeds the queue's max payload of 8 MiB", stand.Header(task.HeaderRejected))
	complete(t, src, stand, task.DeadLettered)
	ids, err := d.MessageIDs("Failed")
	require.NoError(t, err)
	require.Equal(t, []string{"big@too-large"}, ids)

	require.NoError(t, d.Save("INBOX", imaptest.Message("later@too-large", "order", "x")))
	waitEmitted(t, &em.fakeEmitter, 3)
}

// With the server stopped while tasks complete, Complete still returns
// nil at once; the completions are applied once the server is back, and
// nothing is emitted twice.
func TestDovecotCompletionsOutlastTheServer(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	const n = 100
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = imaptest.Message(fmt.Sprintf("%d@outage", i), "order", "x")
	}
	require.NoError(t, d.Append("INBOX", msgs...))
	src := newSource(t, dovecotConfig(d, imap.ModeIdle))
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, n)

	d.Stop()
	for _, tk := range em.all() {
		require.NoError(t, src.Complete(context.Background(), tk, task.Succeeded, ""))
	}
	require.Eventually(t, func() bool { return src.Status().CompletionFailures > 0 }, 20*time.Second, 10*time.Millisecond)
	time.Sleep(2 * time.Second) // down for a while
	d.Resume()
	back := time.Now()
	waitCompletions(t, src)
	t.Logf("completions applied %s after the server was back", time.Since(back))
	require.Equal(t, n, dovecotCount(t, d, "Processed"))
	require.Zero(t, dovecotCount(t, d, "INBOX"))
	require.Equal(t, n, em.count(), "nothing emitted twice")
	require.Eventually(t, func() bool { st := src.Status(); return st.Connected && st.LastError == "" }, 10*time.Second, 10*time.Millisecond,
		"the status clears last_error once reconnected")
}
