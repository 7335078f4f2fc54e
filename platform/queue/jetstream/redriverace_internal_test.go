package jetstream

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// copyStoredJS is a JetStream API that runs meanwhile, once armed, right
// after the server stored (or found a duplicate of) the first re-driven
// copy published through it: what another call does between a Redrive's
// publish and its delete of the dead letter.
type copyStoredJS struct {
	jetstream.JetStream
	mu        sync.Mutex
	meanwhile func()
}

func (s *copyStoredJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ack, err := s.JetStream.PublishMsg(ctx, m, opts...)
	s.mu.Lock()
	f := s.meanwhile
	if strings.Contains(m.Header.Get(hdrMsgID), redriveMark) {
		s.meanwhile = nil
	} else {
		f = nil
	}
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return ack, err
}

// onEachTestServer runs test on an embedded server, and on
// PLBA_TEST_NATS_URL's (under a stream prefix of its own, its streams
// deleted at the end) when it is set.
func onEachTestServer(t *testing.T, cfg Config, test func(t *testing.T, cfg Config)) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		c := cfg
		c.Mode, c.Embedded = ModeEmbedded, embedded.Config{StoreDir: t.TempDir()}
		test(t, c)
	})
	t.Run("external", func(t *testing.T) {
		url := os.Getenv("PLBA_TEST_NATS_URL")
		if url == "" {
			t.Skip("PLBA_TEST_NATS_URL not set")
		}
		t.Parallel()
		prefix := uniquePrefix(t)
		t.Cleanup(func() { deleteStreams(t, url, prefix) })
		c := cfg
		c.URL, c.StreamPrefix = url, prefix
		test(t, c)
	})
}

// TestRedriveOfOneDeadLetterByTwoCallsCountsItOnce: two operators
// re-drive the same dead letter at once: the second call publishes its
// copy after the first stored its own (a duplicate the server drops)
// and, done first, deletes the dead letter. The task is queued once, and
// only one call counts it re-driven: the other re-drove nothing. Both
// counted it (the copy stored once, the delete found done or not), so
// that the two answers and audit entries said two re-drives of it.
func TestRedriveOfOneDeadLetterByTwoCallsCountsItOnce(t *testing.T) {
	t.Parallel()
	onEachTestServer(t, Config{AckWait: 5 * time.Second}, func(t *testing.T, cfg Config) {
		ctx := t.Context()
		b, err := New(Params{Config: cfg})
		require.NoError(t, err)
		js := &copyStoredJS{}
		b.faultJS = func(inner jetstream.JetStream) jetstream.JetStream {
			js.JetStream = inner
			return js
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = b.Close(cctx)
		})
		require.NoError(t, b.Start(ctx))
		const qn = "redrive-twice"
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Key: "k1", Kind: "k", Queue: qn}))
		d := leaseOne(t, b, qn)
		require.NoError(t, b.DeadLetter(ctx, d, "boom"))

		var second int
		var secondErr error
		js.mu.Lock()
		js.meanwhile = func() { second, secondErr = b.Redrive(ctx, qn, "t1") }
		js.mu.Unlock()
		first, err := b.Redrive(ctx, qn, "t1")
		require.NoError(t, err)
		require.NoError(t, secondErr)
		require.Equal(t, 1, first+second, "the dead letter is re-driven once, and counted once (first %d, second %d)", first, second)

		dead, err := b.ListDead(ctx, qn, 0)
		require.NoError(t, err)
		require.Empty(t, dead)
		d = leaseOne(t, b, qn)
		require.Equal(t, "t1", d.Task.ID)
		require.NoError(t, b.Ack(ctx, d))
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = b.Lease(lctx, qn, 1, time.Second)
		require.ErrorIs(t, err, context.DeadlineExceeded, "one copy queued")
	})
}

// TestRedriveCutShortByItsCallerFinishesTheDeadLetterItCopied: the
// caller of a Redrive goes (an operator's request that timed out, its
// context cancelled) right after the server stored a dead letter's copy.
// That dead letter is re-driven all the same: the dead letter deleted
// and counted, so that the caller's answer and audit say re-driven and
// the dead letters do not list it. The rest of the steps failed on the
// ended context: the copy was queued, the dead letter left listed and
// the Redrive reported failed; re-driven again once the duplicate window
// had passed (a paused pool: the copy not delivered meanwhile), the task
// was queued, and ran, twice.
func TestRedriveCutShortByItsCallerFinishesTheDeadLetterItCopied(t *testing.T) {
	t.Parallel()
	onEachTestServer(t, Config{AckWait: 5 * time.Second, DuplicateWindow: time.Second}, func(t *testing.T, cfg Config) {
		ctx := t.Context()
		b, err := New(Params{Config: cfg})
		require.NoError(t, err)
		js := &copyStoredJS{}
		b.faultJS = func(inner jetstream.JetStream) jetstream.JetStream {
			js.JetStream = inner
			return js
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = b.Close(cctx)
		})
		require.NoError(t, b.Start(ctx))
		const qn = "redrive-cut"
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Key: "k1", Kind: "k", Queue: qn}))
		d := leaseOne(t, b, qn)
		require.NoError(t, b.DeadLetter(ctx, d, "boom"))

		rctx, cancel := context.WithCancel(ctx)
		js.mu.Lock()
		js.meanwhile = cancel // the caller gone once the copy is stored
		js.mu.Unlock()
		n, err := b.Redrive(rctx, qn, "t1")
		require.NoError(t, err)
		require.Equal(t, 1, n, "the dead letter whose copy was stored is re-driven")
		dead, err := b.ListDead(ctx, qn, 0)
		require.NoError(t, err)
		require.Empty(t, dead, "not listed beside its queued copy")

		// Past the duplicate window, a re-drive of everything finds
		// nothing to queue again.
		time.Sleep(1500 * time.Millisecond)
		n, err = b.Redrive(ctx, qn)
		require.NoError(t, err)
		require.Equal(t, 0, n)
		d = leaseOne(t, b, qn)
		require.Equal(t, "t1", d.Task.ID)
		require.NoError(t, b.Ack(ctx, d))
		lctx, lcancel := context.WithTimeout(ctx, time.Second)
		defer lcancel()
		_, err = b.Lease(lctx, qn, 1, time.Second)
		require.ErrorIs(t, err, context.DeadlineExceeded, "one copy queued")
	})
}
