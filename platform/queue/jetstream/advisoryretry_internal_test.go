package jetstream

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestAnAdvisoryThatCannotLookForTheCopyBacksOff: the max-deliveries
// advisory of a released message looks for its copy in the work stream
// after it; with more messages behind it than a lookup reads (scanLimit,
// lowered here from maxFindScan so that the looks are quick under the race
// detector) the look fails each time, as long as the backlog lasts. Each
// try reads that many messages (and holds the advisories behind it): the
// tries come ever further apart. They came every second (advisoryRetry).
func TestAnAdvisoryThatCannotLookForTheCopyBacksOff(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const scan = 2_000
	core, logs := observer.New(zap.ErrorLevel)
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := Open(octx, Params{Logger: zap.New(core), Config: Config{MaxDeliver: 1, AckWait: 2 * time.Second,
		PublishTimeout: 30 * time.Second, Prefetch: 1, MaxPrefetch: 1, Embedded: embedded.Config{StoreDir: t.TempDir()},
		findScan: scan}})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	const qn = "advisory-backs-off"
	// More messages behind the task than one look reads, all stored
	// before its lease (and so its advisory) can end: stored after, the
	// first look could read the stream to its end.
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t", Kind: "k", Queue: qn}))
	batch := make([]*task.Task, 0, 500)
	for i := range scan + 1 {
		batch = append(batch, &task.Task{ID: "b" + strconv.Itoa(i), Kind: "k", Queue: qn})
		if len(batch) == cap(batch) || i == scan {
			require.NoError(t, b.Enqueue(ctx, batch...))
			batch = batch[:0]
		}
	}
	d := leaseOne(t, b, qn)
	require.Equal(t, "t", d.Task.ID)
	r, err := b.receiptOf(d)
	require.NoError(t, err)
	// A Release's record; the message is left to the server.
	require.NoError(t, b.markDone(ctx, r.q, d.Task.Key, r.keyed, task.Returned, ""))

	// The times of the advisory's first five failures.
	failed := func() []time.Time {
		var at []time.Time
		for _, e := range logs.FilterMessage("jetstream: dead-letter exhausted task (tried again later)").All() {
			at = append(at, e.Time)
		}
		return at
	}
	require.Eventually(t, func() bool { return len(failed()) >= 5 }, 180*time.Second, 50*time.Millisecond,
		"the advisory fails while the backlog lasts")
	// The fourth failure waits 8 advisoryRetry before the fifth try (and
	// its look, however long, then fails): each try came an
	// advisoryRetry after a failure, plus its look.
	at := failed()
	first, fourth := at[1].Sub(at[0]), at[4].Sub(at[3])
	require.GreaterOrEqual(t, fourth, 6*advisoryRetry, "tries of a failing advisory back off (gaps %s, then %s)", first, fourth)
	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Empty(t, dead, "its copy may be queued: no dead letter while the look fails")
}
