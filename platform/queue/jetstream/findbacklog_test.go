package jetstream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// findBacklog is the backlog a lookup by key reads through in
// TestFindTasksThroughABacklog.
const findBacklog = 20_000

// A lookup by key with 20,000 tasks queued finds one near the end, and a
// dead-lettered one, and says it searched the whole work stream (it said
// the stream was unread beyond 20,000 messages when none was left):
//
//   - on PLBA_TEST_NATS_URL's server (one request per message when it is
//     older than 2.11, in ranges read at once: TestFindRangesAreReadAtOnce
//     shows they are, where a bound on the time taken would fail under
//     load), the time taken logged: a schedule's lookup of a due time
//     whose emit was given up is bounded by its attempt timeout, two
//     seconds or more. Read one message after the other, the lookup took
//     4.9 seconds on a 2.9 server (7.8 under the race detector), and the
//     schedule's due time stayed unknown; in ranges, 0.9 s (1.7 under the
//     race detector with the machine's two cores shared);
//   - on an embedded server (2.11 on: batched direct gets) with a request
//     per thousand messages or so, where it made one per message.
func TestFindTasksThroughABacklog(t *testing.T) {
	t.Run("external", func(t *testing.T) {
		url := externalURL(t)
		prefix := jetstream.UniquePrefix(t)
		t.Cleanup(func() { jetstream.DeleteStreams(t, url, prefix) })
		b := openBackend(t, jetstream.Config{URL: url, StreamPrefix: prefix, AckWait: time.Minute})
		findThroughBacklog(t, b, func(time.Duration, int) {})
	})
	t.Run("embedded", func(t *testing.T) {
		b := openBackend(t, jetstream.Config{Mode: jetstream.ModeEmbedded, AckWait: time.Minute,
			Embedded: embedded.Config{StoreDir: t.TempDir()}})
		findThroughBacklog(t, b, func(_ time.Duration, requests int) {
			require.Less(t, requests, findBacklog/20, "requests of the lookup")
		})
	})
}

// findThroughBacklog queues a dead letter and findBacklog tasks on b, and
// looks one near the end and the dead letter up, checking each lookup's
// time and the messages the backend's connection sent meanwhile (its
// requests, and whatever else it sent then: a few) with check.
func findThroughBacklog(t *testing.T, b *jetstream.Backend, check func(took time.Duration, requests int)) {
	t.Helper()
	ctx := context.Background()
	const q = "find-backlog"
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: q, Key: "dead-1", Payload: []byte("{}")}))
	ds, err := b.Lease(ctx, q, 1, time.Minute)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.NoError(t, b.DeadLetter(ctx, ds[0], "refused"))

	batch := make([]*task.Task, 0, 500)
	for i := range findBacklog {
		batch = append(batch, &task.Task{Kind: "k", Queue: q, Key: fmt.Sprint("key-", i), Payload: []byte(`{"n":1}`)})
		if len(batch) == cap(batch) {
			require.NoError(t, b.Enqueue(ctx, batch...))
			batch = batch[:0]
		}
	}
	sent := func() int { return int(b.JetStream().Conn().Stats().OutMsgs) }
	for _, key := range []string{fmt.Sprint("key-", findBacklog-10), "dead-1"} {
		before := sent()
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		start := time.Now()
		s, err := b.FindTasks(lctx, q, queue.TaskLookup{Key: key})
		took := time.Since(start)
		cancel()
		requests := sent() - before
		require.NoError(t, err, "after %s", took)
		require.Empty(t, s.NotSearched)
		require.Len(t, s.Found, 1, key)
		require.Equal(t, key, s.Found[0].Task.Key)
		if key == "dead-1" {
			require.Equal(t, queue.StateDead, s.Found[0].State)
		} else {
			require.Equal(t, queue.StateReady, s.Found[0].State)
		}
		t.Logf("%s found through %d queued tasks in %s, %d messages sent", key, findBacklog, took, requests)
		check(took, requests)
	}
}
