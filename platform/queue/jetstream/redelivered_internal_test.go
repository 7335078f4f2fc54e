package jetstream

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// BenchmarkRedeliveredCopy is the lookup a delivery after the first pays
// (a retry, an expired lease) before it is handed out: one get of the
// queue's newest dead letter ("none": the queue has none; "older": it
// was stored before the message), or, when dead letters were stored
// since the message, a scan of them, here n, none the one looked for:
//
//	go test -run '^$' -bench RedeliveredCopy -benchtime 200x ./platform/queue/jetstream/
func BenchmarkRedeliveredCopy(b *testing.B) {
	be := openTestBackend(b, Config{Mode: ModeEmbedded, AckWait: time.Minute, Embedded: embedded.Config{StoreDir: b.TempDir()}})
	ctx := context.Background()
	const qn = "bench-again"
	require.NoError(b, be.Enqueue(ctx, &task.Task{Kind: "k", Queue: qn}))
	q, err := be.queue(qn)
	require.NoError(b, err)
	lookup := func(b *testing.B, ts time.Time) {
		md := &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: 1}, Timestamp: ts}
		for b.Loop() {
			dl, err := be.redeliveredCopy(ctx, q, md, "none")
			require.NoError(b, err)
			require.Nil(b, dl)
		}
	}
	b.Run("none", func(b *testing.B) { lookup(b, time.Now()) })
	dead := 0
	for _, n := range []int{1, 100, 1000} {
		for ; dead < n; dead++ {
			_, err := be.publishDead(ctx, q, &task.Task{ID: fmt.Sprint("d", dead), Kind: "k", Queue: qn},
				false, uint64(1_000_000+dead), 1, "bench")
			require.NoError(b, err)
		}
		b.Run(fmt.Sprintf("since/dead=%d", n), func(b *testing.B) { lookup(b, time.Now().Add(-time.Hour)) })
	}
	b.Run("older", func(b *testing.B) { lookup(b, time.Now().Add(time.Hour)) })
}

// A delivery that follows this process's own Retry needs no dead-letter
// lookup (its previous delivery passed it and its Retry made no dead
// letter) and pays none, also with dead letters stored since the
// message; a delivery after a lease ran out still looks.
func TestDeliveryAfterALocalRetryIsNotLookedUp(t *testing.T) {
	be := openTestBackend(t, Config{Mode: ModeEmbedded, AckWait: 300 * time.Millisecond, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	ctx := t.Context()
	const qn = "retried-here"
	require.NoError(t, be.Enqueue(ctx, &task.Task{ID: "r", Kind: "k", Queue: qn}))
	q, err := be.queue(qn)
	require.NoError(t, err)
	ds, err := be.Lease(ctx, qn, 1, time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	for i := range 20 { // dead letters of other tasks, stored since the message
		_, err := be.publishDead(ctx, q, &task.Task{ID: fmt.Sprint("d", i), Kind: "k", Queue: qn}, false, uint64(1_000+i), 1, "other")
		require.NoError(t, err)
	}
	require.NoError(t, be.Retry(ctx, ds[0], time.Now()))
	ds, err = be.Lease(ctx, qn, 1, time.Millisecond)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, 2, ds[0].Task.Attempt)
	require.Zero(t, be.copyLookups.Load(), "the delivery after a local Retry")

	// Left unsettled: the server delivers it again after AckWait.
	ds, err = be.Lease(ctx, qn, 1, time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, 3, ds[0].Task.Attempt)
	require.Equal(t, int64(1), be.copyLookups.Load(), "the delivery after an expired lease")
	require.NoError(t, be.Ack(ctx, ds[0]))

	// A local Retry of delivery 1 does not vouch for delivery 3: delivery
	// 2 went to another process, which may have dead-lettered it.
	q.pmu.Lock()
	q.retried[42] = retried{due: time.Now(), delivered: 1}
	q.pmu.Unlock()
	require.False(t, q.retriedHere(42, 3))
	require.False(t, q.retriedHere(42, 2), "forgotten once asked")
}
