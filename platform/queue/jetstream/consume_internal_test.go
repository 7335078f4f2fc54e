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
		ackWait  = 400 * time.Millisecond
		n        = 3 * prefetch
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
	for end := time.Now().Add(5 * ackWait); time.Now().Before(end); {
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
