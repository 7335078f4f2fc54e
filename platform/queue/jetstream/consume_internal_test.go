package jetstream

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestDeletedConsumerIsRecreated: someone deletes the queue's durable
// consumer under a running puller, either while its pull request is open
// (the server ends it with 409 "consumer deleted") or while the prefetch
// buffer is full and no request is open (the next request finds no
// consumer). The puller creates the consumer again and work continues: a
// task enqueued after the deletion is leased, as are the ones the deleted
// consumer had delivered.
func TestDeletedConsumerIsRecreated(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		bufferFull bool
	}{
		{"request open", false},
		{"buffer full", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			const prefetch = 4
			b := openTestBackend(t, Config{Mode: ModeEmbedded, Prefetch: prefetch, AckWait: 5 * time.Second,
				Embedded: embedded.Config{StoreDir: t.TempDir()}})
			const qname = "gone"
			before := prefetch + 1 // one delivered and acked, the rest fill the buffer
			if !c.bufferFull {
				before = 1
			}
			for i := range before {
				require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: qname, Key: "before-" + strconv.Itoa(i)}))
			}
			ds, err := b.Lease(ctx, qname, 1, 5*time.Second) // starts the puller
			require.NoError(t, err)
			require.Len(t, ds, 1)
			require.NoError(t, b.Ack(ctx, ds[0]))
			q := b.knownQueue(qname)
			if c.bufferFull {
				// The first request brought prefetch messages, Lease took
				// one: the room left is below half the buffer, so the
				// puller asks for no more.
				require.Eventually(t, func() bool {
					buffered, _ := q.prefetched(time.Now())
					return buffered == prefetch-1 && !q.pulling()
				}, 10*time.Second, 5*time.Millisecond, "the buffer fills up and no request is open")
			}

			require.NoError(t, b.js.DeleteConsumer(ctx, q.stream, b.cfg.Consumer))
			require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: qname, Key: "after"}))

			// The deleted consumer's deliveries cannot be acked; the new
			// consumer delivers them again. Collect until every task came.
			want := map[string]bool{"after": true}
			for i := 1; i < before; i++ {
				want["before-"+strconv.Itoa(i)] = true
			}
			lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			for len(want) > 0 {
				ds, err := b.Lease(lctx, qname, 10, 5*time.Second)
				require.NoError(t, err, "still waiting for %v", want)
				for _, d := range ds {
					delete(want, d.Task.Key)
					require.NoError(t, b.Ack(ctx, d))
				}
			}
			_, err = b.js.Consumer(ctx, q.stream, b.cfg.Consumer)
			require.NoError(t, err, "the consumer exists again")
		})
	}
}

// pulling reports whether q's puller has a request open.
func (q *queueState) pulling() bool {
	q.fmu.Lock()
	defer q.fmu.Unlock()
	return q.cancelFetch != nil
}

// TestPrefetchIsBoundedAndKeptAlive: while nobody leases (a paused or
// busy pool), this process holds at most Config.Prefetch messages of a
// queue, and all of them wait in the buffer, kept alive: after several
// AckWaits every task comes out at its first attempt, none was
// redelivered by the server.
func TestPrefetchIsBoundedAndKeptAlive(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const (
		prefetch = 4
		// Long enough that a loaded machine (the race detector beside
		// other packages' tests) does not delay the keeper past it: at
		// 400ms it failed at a load average of 5.
		ackWait = 1500 * time.Millisecond
		n       = 3 * prefetch
	)
	b := openTestBackend(t, Config{Mode: ModeEmbedded, Prefetch: prefetch, AckWait: ackWait,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qname = "idle"
	for i := range n {
		require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: qname, Key: strconv.Itoa(i)}))
	}
	ds, err := b.Lease(ctx, qname, 1, time.Minute) // starts the puller; this one is leased long
	require.NoError(t, err)
	require.Len(t, ds, 1)
	q := b.knownQueue(qname)
	cons, err := b.js.Consumer(ctx, q.stream, b.cfg.Consumer)
	require.NoError(t, err)
	// Nobody leases for several AckWaits.
	for end := time.Now().Add(4 * ackWait); time.Now().Before(end); {
		info, err := cons.Info(ctx)
		require.NoError(t, err)
		require.LessOrEqual(t, info.NumAckPending, prefetch, "delivered to this process: the leased task and the buffer")
		require.Zero(t, info.NumRedelivered, "nothing waiting in this process expired")
		time.Sleep(ackWait / 4) // sampling, not synchronisation
	}
	seen := map[string]bool{ds[0].Task.Key: true}
	require.NoError(t, b.Ack(ctx, ds[0]))
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for len(seen) < n {
		ds, err := b.Lease(lctx, qname, n, time.Minute)
		require.NoError(t, err)
		for _, d := range ds {
			require.Equal(t, 1, d.Task.Attempt, "task %s was redelivered", d.Task.Key)
			seen[d.Task.Key] = true
			require.NoError(t, b.Ack(ctx, d))
		}
	}
}

// TestPrefetchFollowsTheLeaseRate: the buffer's size is about
// prefetchAhead of the rate at which Lease takes messages, between
// Prefetch and MaxPrefetch: it grows within a few samples of a burst and
// falls back to Prefetch once Lease stops taking.
func TestPrefetchFollowsTheLeaseRate(t *testing.T) {
	t.Parallel()
	const lo, hi = 64, 1024
	q := &queueState{}
	now := time.Unix(1_000_000, 0)
	require.Equal(t, lo, q.ahead(now, lo, hi), "no rate known yet")
	step := func(perMs, ms int) int {
		size := 0
		for range ms {
			q.taken += perMs
			now = now.Add(time.Millisecond)
			size = q.ahead(now, lo, hi)
		}
		return size
	}
	require.Equal(t, lo, step(1, 20), "1k/s: 10 messages of work, below Prefetch")
	require.Greater(t, step(50, 5), 2*lo, "a burst raises the size within a few milliseconds")
	require.InDelta(t, 500, step(50, 100), 1, "50k/s: 10ms is 500 messages")
	require.Equal(t, hi, step(200, 50), "200k/s: capped at MaxPrefetch")
	size := hi
	for i := 0; size > lo; i++ {
		require.Less(t, i, 50, "still %d after %d idle milliseconds", size, i)
		now = now.Add(time.Millisecond)
		size = q.ahead(now, lo, hi)
	}
	// Back to 200k/s, then a long pause and a slow Lease: the sample over
	// the whole pause replaces the rate.
	require.Equal(t, hi, step(200, 50))
	now = now.Add(time.Minute)
	q.taken = 1
	require.Equal(t, lo, q.ahead(now, lo, hi))
	require.Less(t, q.rate, 1.0)
}

// TestPrefetchGrowsUnderLoadAndShrinksWhenIdle: with Lease taking tasks as
// fast as they come, the puller holds more than Prefetch messages (up to
// MaxPrefetch); once nobody leases, the buffer is refilled to Prefetch
// only, and what it holds stays there, kept alive, at its first attempt.
func TestPrefetchGrowsUnderLoadAndShrinksWhenIdle(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const (
		prefetch, maxPrefetch = 4, 256
		n                     = 20_000
		qname                 = "burst"
	)
	b := openTestBackend(t, Config{Mode: ModeEmbedded, Prefetch: prefetch, MaxPrefetch: maxPrefetch,
		AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	tasks := make([]*task.Task, n)
	for i := range tasks {
		tasks[i] = &task.Task{Kind: "k", Queue: qname}
	}
	require.NoError(t, b.Enqueue(ctx, tasks...))
	q := b.knownQueue(qname)
	most, done := 0, 0
	lctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for done < n/2 {
		ds, err := b.Lease(lctx, qname, 64, 5*time.Second)
		require.NoError(t, err)
		for _, d := range ds {
			require.NoError(t, b.Ack(ctx, d))
		}
		done += len(ds)
		buffered, _ := q.prefetched(time.Now())
		most = max(most, buffered)
	}
	require.Greater(t, most, prefetch, "the buffer grew beyond Prefetch under load")
	require.LessOrEqual(t, most, maxPrefetch)

	// Lease slows down to 200 tasks/s: every task still comes at its first
	// attempt, and the size falls back to Prefetch.
	for range 30 {
		ds, err := b.Lease(lctx, qname, 1, 5*time.Second)
		require.NoError(t, err)
		for _, d := range ds {
			require.Equal(t, 1, d.Task.Attempt)
			require.NoError(t, b.Ack(ctx, d))
		}
		time.Sleep(5 * time.Millisecond) // 200/s: 2 messages of work
	}
	require.Eventually(t, func() bool {
		q.pmu.Lock()
		defer q.pmu.Unlock()
		return q.ahead(time.Now(), prefetch, maxPrefetch) == prefetch
	}, 5*time.Second, 10*time.Millisecond, "the size fell back to Prefetch")
}
