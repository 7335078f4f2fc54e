package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestExpiredUnsettledReceiptsAreForgotten: deliveries whose lease ran out
// without a settlement (a hung handler, a delivery the pool skipped) are
// not tracked, message and payload included, until Close.
func TestExpiredUnsettledReceiptsAreForgotten(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{Mode: ModeEmbedded, MaxDeliver: -1, AckWait: time.Second,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const n = 20
	for range n {
		require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "leak", Payload: make([]byte, 64<<10)}))
	}
	for got := 0; got < n; { // first deliveries: never settled
		ds, err := b.Lease(ctx, "leak", n, 100*time.Millisecond)
		require.NoError(t, err)
		got += len(ds)
	}
	for acked := 0; acked < n; { // the redeliveries: acked
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		ds, err := b.Lease(lctx, "leak", n, 10*time.Second)
		cancel()
		require.NoError(t, err)
		for _, d := range ds {
			require.Equal(t, 2, d.Task.Attempt)
			require.NoError(t, b.Ack(ctx, d))
			acked++
		}
	}
	require.Eventually(t, func() bool {
		b.imu.Lock()
		defer b.imu.Unlock()
		return len(b.inflight) == 0
	}, 10*time.Second, 10*time.Millisecond, "every task is acked; the expired receipts must be gone too")
}

// TestSlowSettlementDoesNotStopLeaseRenewal: while one delivery's
// settlement holds its receipt (a Release or dead-letter publish during a
// reconnect), the lease keeper still renews every other lease, so their
// tasks are not redelivered while their handlers run.
func TestSlowSettlementDoesNotStopLeaseRenewal(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{Mode: ModeEmbedded, AckWait: 400 * time.Millisecond,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "keep", Payload: []byte("1")},
		&task.Task{Kind: "k", Queue: "keep", Payload: []byte("2")}))
	var ds []*queue.Delivery
	for len(ds) < 2 {
		got, err := b.Lease(ctx, "keep", 2, 30*time.Second) // promised far beyond AckWait
		require.NoError(t, err)
		ds = append(ds, got...)
	}
	r1 := ds[0].Receipt.(*receipt)
	r1.mu.Lock() // "its settlement is publishing"
	locked := true
	unlock := func() {
		if locked {
			locked = false
			r1.mu.Unlock()
		}
	}
	defer unlock() // also when the test fails: Close waits for the keeper
	// Several AckWaits: without renewal the server redelivers task 2.
	lctx, cancel := context.WithTimeout(ctx, 5*400*time.Millisecond)
	defer cancel()
	for {
		again, err := b.Lease(lctx, "keep", 2, time.Second)
		if errors.Is(err, context.DeadlineExceeded) || lctx.Err() != nil {
			break
		}
		require.NoError(t, err)
		for _, d := range again {
			require.NotEqual(t, ds[1].Task.ID, d.Task.ID, "task 2 redelivered (attempt %d) while its lease was promised", d.Task.Attempt)
		}
	}
	unlock()
	require.NoError(t, b.Ack(ctx, ds[1]), "task 2 still holds its lease")
	require.NoError(t, b.Ack(ctx, ds[0]))
}

// TestTooLargeToDeadLetterIsRefused: a task whose dead-letter copy would
// not fit in the server's max_payload is refused at Enqueue (it could
// never leave the queue once its attempts are used up); one that leaves
// the room is accepted and can be dead-lettered with a long reason.
func TestTooLargeToDeadLetterIsRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const maxPayload = 64 << 10
	b := openTestBackend(t, Config{Mode: ModeEmbedded, AckWait: 5 * time.Second,
		Embedded: embedded.Config{StoreDir: t.TempDir(), MaxPayload: maxPayload}})
	err := b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "big", Payload: make([]byte, maxPayload-300)})
	require.ErrorIs(t, err, queue.ErrTooLarge)
	require.ErrorContains(t, err, "dead-letter")

	fits := &task.Task{Kind: "k", Queue: "big", Payload: make([]byte, maxPayload-deadLetterRoom-1024)}
	require.NoError(t, b.Enqueue(ctx, fits))
	ds, err := b.Lease(ctx, "big", 1, 5*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.NoError(t, b.DeadLetter(ctx, ds[0], "handler: "+strings.Repeat("x", 2*maxReason)))
	dead, err := b.ListDead(ctx, "big", 1)
	require.NoError(t, err)
	require.Len(t, dead, 1)
}

// TestIDThatGrowsInItsCopyIsRefused: a task's dead-letter and Release
// copies write its id into their Plba-Task, escaped (three bytes for a
// blank, say), where the original left it to its Nats-Msg-Id; Enqueue
// keeps room for that growth, so a task it accepts can always be
// released and dead-lettered.
func TestIDThatGrowsInItsCopyIsRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const maxPayload = 64 << 10
	b := openTestBackend(t, Config{Mode: ModeEmbedded, AckWait: 5 * time.Second,
		Embedded: embedded.Config{StoreDir: t.TempDir(), MaxPayload: maxPayload}})
	// 30 KiB as its Nats-Msg-Id, 60 KiB escaped: the Release copy (which
	// keeps the Nats-Msg-Id) and the dead-letter copy would not fit.
	blanks := strings.Repeat("a ", 15<<10) + "a"
	err := b.Enqueue(ctx, &task.Task{ID: blanks, Kind: "k", Queue: "grow"})
	require.ErrorIs(t, err, queue.ErrTooLarge, "its copies would not fit")

	// Half of it fits: 15 KiB as its Nats-Msg-Id, 30 KiB escaped.
	half := strings.Repeat("a ", 15<<9) + "a"
	releaseThenDeadLetter(t, b, half)

	// The same length without escapes fits; its Release copy (the key in
	// its Nats-Msg-Id, the id in its Plba-Task) is published, not given
	// back with a negative ack that would count the attempt; and it is
	// dead-lettered.
	plain := strings.Repeat("ab", 10<<10)
	releaseThenDeadLetter(t, b, plain)
	dead, err := b.ListDead(ctx, "grow", 2)
	require.NoError(t, err)
	require.Len(t, dead, 2)
	require.Equal(t, half, dead[0].Task.ID)
	require.Equal(t, plain, dead[1].Task.ID)
}

// releaseThenDeadLetter enqueues a task with id on queue "grow", releases
// its first delivery (which must come back uncounted, so the Release copy
// was published, not replaced by a negative ack) and dead-letters the
// second with the longest reason kept.
func releaseThenDeadLetter(t *testing.T, b *Backend, id string) {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: id, Kind: "k", Queue: "grow"}))
	d := leaseOne(t, b, "grow")
	require.NoError(t, b.Release(ctx, d))
	d = leaseOne(t, b, "grow")
	require.Equal(t, id, d.Task.ID)
	require.Equal(t, 1, d.Task.Attempt, "released uncounted")
	require.NoError(t, b.DeadLetter(ctx, d, "handler: "+strings.Repeat("x", 2*maxReason)))
}

// TestLongIDScheduledKeepsTheConnection: a delayed task's schedule subject
// is built from its id; a long id must not make the publish's control
// line exceed the server's limit (4 KiB by default), which the server
// answers by closing the connection for good.
func TestLongIDScheduledKeepsTheConnection(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{Mode: ModeEmbedded, AckWait: 5 * time.Second,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	require.True(t, b.scheduling(), "the embedded server has message schedules")
	long := strings.Repeat("/", 2000) // 6,000 bytes once made a subject token
	due := time.Now().Add(500 * time.Millisecond)
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: long, Kind: "k", Queue: "later", NotBefore: due}))
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: long + "2", Kind: "k", Queue: "later", NotBefore: due}),
		"a second schedule of a long id is its own")
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "after", Kind: "k", Queue: "later"}), "the connection still works")
	got := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < 3 && time.Now().Before(deadline) {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ds, err := b.Lease(lctx, "later", 3, 5*time.Second)
		cancel()
		require.NoError(t, err)
		for _, d := range ds {
			got[d.Task.ID] = true
			require.NoError(t, b.Ack(ctx, d))
		}
	}
	require.Equal(t, map[string]bool{long: true, long + "2": true, "after": true}, got)
}

// TestBlankEdgedKeysStayDistinct: nats.go trims the blanks around a
// header value, so a key with a blank at either end must not be the
// Nats-Msg-Id as it is: its id would come back trimmed, and the server
// would take it for the trimmed key's duplicate.
func TestBlankEdgedKeysStayDistinct(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{Mode: ModeEmbedded, AckWait: 5 * time.Second,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	ids := []string{"abc", "abc ", " abc", "abc\t", " abc "}
	for _, id := range ids {
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: id, Kind: "k", Queue: "edges"}))
	}
	got := map[string]string{}
	for range ids {
		d := leaseOne(t, b, "edges")
		got[d.Task.ID] = d.Task.Key
		require.NoError(t, b.Ack(ctx, d))
	}
	for _, id := range ids {
		require.Equal(t, id, got[id], "task %q comes back with its own id and key", id)
	}
	// Released, a blank-edged task keeps its id too.
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "rel ", Kind: "k", Queue: "edges"}))
	d := leaseOne(t, b, "edges")
	require.NoError(t, b.Release(ctx, d))
	d = leaseOne(t, b, "edges")
	require.Equal(t, "rel ", d.Task.ID)
	require.Equal(t, 1, d.Task.Attempt)
}

// TestReceiptSize guards the size of a delivery's one allocation (its
// receipt, delivery and task, and the slice a Lease of it alone returns)
// on 64-bit platforms: 416 bytes is a size class of its own, and 8 bytes
// more would allocate 448.
func TestReceiptSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("64-bit platforms only")
	}
	require.LessOrEqual(t, unsafe.Sizeof(receipt{}), uintptr(416))
}

// TestLeaseAllocations guards what a Lease of one prefetched task
// allocates: the receipt (which holds the delivery, its task and the
// slice Lease returns) and the task's header map (two: a small map).
// Taking the message from the buffer allocates nothing (up to leaseRoom
// messages); the metadata nats.go parses (the attempt count) is parsed
// when the message reaches the buffer (prefetch).
func TestLeaseAllocations(t *testing.T) {
	ctx := t.Context()
	const runs, queued = 100, 256 // the puller asks for more once half the buffer is free: not within the runs
	b := openTestBackend(t, Config{Mode: ModeEmbedded, Prefetch: queued, MaxPrefetch: queued,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	tasks := make([]*task.Task, queued)
	for i := range tasks {
		tasks[i] = &task.Task{Kind: "k", Queue: "allocs", Payload: make([]byte, 128),
			Headers: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}}
	}
	require.NoError(t, b.Enqueue(ctx, tasks...))
	q, err := b.queue("allocs")
	require.NoError(t, err)
	require.NoError(t, q.consuming(ctx, b))
	require.Eventually(t, func() bool {
		q.pmu.Lock()
		defer q.pmu.Unlock()
		return len(q.buf) == queued
	}, 20*time.Second, 5*time.Millisecond, "every task prefetched")

	leased := make([]*queue.Delivery, 0, runs+1)
	allocs := testing.AllocsPerRun(runs, func() { // once more to warm up
		ds, err := b.Lease(ctx, "allocs", 1, time.Minute)
		if err != nil || len(ds) != 1 {
			panic(fmt.Sprintf("lease: %d deliveries, %v", len(ds), err))
		}
		leased = append(leased, ds[0])
	})
	t.Logf("allocations per Lease of one task: %.2f", allocs)
	require.LessOrEqual(t, allocs, 3.3, "3, with room for the odd allocation of another goroutine")
	for _, d := range leased {
		require.NoError(t, b.Ack(ctx, d))
	}
}
