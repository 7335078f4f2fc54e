package memory_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

func newBackend(t *testing.T, o memory.Options) *memory.Backend {
	t.Helper()
	b := memory.New(o)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

func tk(payload string) *task.Task {
	return &task.Task{Kind: "k", Queue: "q", Payload: []byte(payload)}
}

func lease(t *testing.T, b *memory.Backend, n int) []*queue.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ds, err := b.Lease(ctx, "q", n, time.Minute)
	require.NoError(t, err)
	return ds
}

// async runs fn in a goroutine owned by the test and returns its result.
func async(t *testing.T, fn func() error) <-chan error {
	t.Helper()
	ch := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { ch <- fn() })
	t.Cleanup(wg.Wait)
	return ch
}

func requireBlocked(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s returned (%v) but should block", what, err)
	case <-time.After(100 * time.Millisecond):
	}
}

func requireReturns(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not return", what)
		return nil
	}
}

func TestEnqueueBlocksWhenFullUntilRoomIsFreed(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{Capacity: 2})
	ctx := context.Background()
	require.NoError(t, b.Enqueue(ctx, tk("a"), tk("b")))

	blocked := async(t, func() error { return b.Enqueue(ctx, tk("c")) })
	requireBlocked(t, blocked, "Enqueue on a full queue")

	// Leasing does not free room: in-flight tasks count against capacity.
	ds := lease(t, b, 1)
	requireBlocked(t, blocked, "Enqueue with a leased task")
	// A delayed retry does not either.
	require.NoError(t, b.Retry(ctx, ds[0], time.Now().Add(time.Hour)))
	requireBlocked(t, blocked, "Enqueue with a delayed task")

	ds = lease(t, b, 1)
	require.NoError(t, b.Ack(ctx, ds[0]))
	require.NoError(t, requireReturns(t, blocked, "Enqueue after an ack"))
	st, err := b.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, queue.Stats{Queue: "q", Ready: 1, Delayed: 1}, st)
}

func TestDeadLetterFreesRoom(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{Capacity: 1})
	ctx := context.Background()
	require.NoError(t, b.Enqueue(ctx, tk("a")))
	blocked := async(t, func() error { return b.Enqueue(ctx, tk("b")) })
	requireBlocked(t, blocked, "Enqueue on a full queue")
	ds := lease(t, b, 1)
	require.NoError(t, b.DeadLetter(ctx, ds[0], "bad"))
	require.NoError(t, requireReturns(t, blocked, "Enqueue after a dead letter"))
}

func TestFailFast(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{Capacity: 2, FailFast: true})
	ctx := context.Background()
	require.NoError(t, b.Enqueue(ctx, tk("a")))
	err := b.Enqueue(ctx, tk("b"), tk("c"))
	require.ErrorIs(t, err, queue.ErrFull)
	require.ErrorContains(t, err, `queue "q" holds 1 of 2 tasks`)
	st, _ := b.Stats(ctx, "q")
	require.Equal(t, int64(1), st.Ready, "a refused batch stores nothing")
	// Duplicates do not need room.
	dup := tk("dup")
	dup.Key = "k1"
	require.NoError(t, b.Enqueue(ctx, dup))
	again := tk("again")
	again.Key = "k1"
	require.NoError(t, b.Enqueue(ctx, again), "a duplicate of a live key is dropped, not refused")
}

// TestDuplicatesWithinABatchNeedNoRoom: tasks of one batch that share a
// key are stored once, so they need room for one. Each used to count,
// and a batch that fits was refused as full (FailFast), or as larger than
// the queue's capacity.
func TestDuplicatesWithinABatchNeedNoRoom(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{Capacity: 2, FailFast: true})
	ctx := context.Background()
	require.NoError(t, b.Enqueue(ctx, tk("a")))
	x, y := tk("x"), tk("y")
	x.Key, y.Key = "k", "k"
	require.NoError(t, b.Enqueue(ctx, x, y), "one slot is free, one task is new")
	st, err := b.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, int64(2), st.Ready)

	c := newBackend(t, memory.Options{Capacity: 2})
	var same []*task.Task
	for i := range 3 {
		s := tk(fmt.Sprint("same-", i))
		s.Key = "same"
		same = append(same, s)
	}
	require.NoError(t, c.Enqueue(ctx, same...), "three tasks, one key: one stored")
	st, err = c.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Ready)
}

func TestBatchLargerThanCapacity(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{Capacity: 2})
	err := b.Enqueue(context.Background(), tk("a"), tk("b"), tk("c"))
	require.ErrorIs(t, err, queue.ErrFull)
	require.ErrorContains(t, err, "exceeds the capacity 2")
}

func TestBlockedEnqueueCancelAndClose(t *testing.T) {
	t.Parallel()
	b := memory.New(memory.Options{Capacity: 1})
	require.NoError(t, b.Enqueue(context.Background(), tk("a")))

	ctx, cancel := context.WithCancel(context.Background())
	blocked := async(t, func() error { return b.Enqueue(ctx, tk("b")) })
	requireBlocked(t, blocked, "Enqueue on a full queue")
	cancel()
	require.ErrorIs(t, requireReturns(t, blocked, "cancelled Enqueue"), context.Canceled)
	st, _ := b.Stats(context.Background(), "q")
	require.Equal(t, int64(1), st.Ready, "the cancelled task was not stored")

	blocked = async(t, func() error { return b.Enqueue(context.Background(), tk("c")) })
	requireBlocked(t, blocked, "Enqueue on a full queue")
	require.NoError(t, b.Close(context.Background()))
	require.ErrorIs(t, requireReturns(t, blocked, "Enqueue during Close"), queue.ErrClosed)
}

func TestBatchAcrossQueuesIsWhole(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{Capacity: 1, FailFast: true})
	ctx := context.Background()
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "full"}))
	err := b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "other"}, &task.Task{Kind: "k", Queue: "full"})
	require.ErrorIs(t, err, queue.ErrFull)
	st, _ := b.Stats(ctx, "other")
	require.Zero(t, st.Ready, "nothing of the refused batch was stored")
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "other"}, &task.Task{Kind: "k", Queue: "third"}))
	qs, err := b.Queues(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"full", "other", "third"}, qs)
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestDedupWindowAfterAck(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := newBackend(t, memory.Options{DedupWindow: time.Minute, Now: c.Now})
	ctx := context.Background()
	first := tk("first")
	first.Key = "order-1"
	require.NoError(t, b.Enqueue(ctx, first))
	require.NoError(t, b.Ack(ctx, lease(t, b, 1)[0]))

	again := tk("again")
	again.Key = "order-1"
	require.NoError(t, b.Enqueue(ctx, again))
	st, _ := b.Stats(ctx, "q")
	require.Zero(t, st.Ready, "key refused within the window")

	c.add(time.Minute + time.Second)
	late := tk("late")
	late.Key = "order-1"
	require.NoError(t, b.Enqueue(ctx, late))
	ds := lease(t, b, 1)
	require.Equal(t, "late", string(ds[0].Task.Payload), "key accepted after the window")
}

func TestReleaseDoesNotCountTheAttempt(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{})
	ctx := context.Background()
	require.NoError(t, b.Enqueue(ctx, tk("a")))
	d := lease(t, b, 1)[0]
	require.Equal(t, 1, d.Task.Attempt)
	require.NoError(t, b.Release(ctx, d))
	require.ErrorIs(t, b.Release(ctx, d), queue.ErrLeaseLost, "second Release")
	d = lease(t, b, 1)[0]
	require.Equal(t, 1, d.Task.Attempt, "a released delivery is not an attempt")
	require.NoError(t, b.Ack(ctx, d))
}

func TestDeliveredTaskIsACopy(t *testing.T) {
	t.Parallel()
	b := newBackend(t, memory.Options{})
	ctx := context.Background()
	require.NoError(t, b.Enqueue(ctx, tk("a")))
	d := lease(t, b, 1)[0]
	d.Task.Attempt = 99
	d.Task.Kind = "changed"
	require.NoError(t, b.Retry(ctx, d, time.Time{}))
	d = lease(t, b, 1)[0]
	require.Equal(t, 2, d.Task.Attempt)
	require.Equal(t, "k", d.Task.Kind)
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, memory.Options{}.Validate())
	err := memory.Options{Capacity: -1, DedupWindow: -time.Second, MaxDeliveries: -2, DefaultLease: -time.Second}.Validate()
	require.Error(t, err)
	for _, want := range []string{"capacity: must not be negative (got -1)", "dedup_window", "max_deliveries", "default_lease"} {
		require.ErrorContains(t, err, want)
	}
	o := memory.Options{}.WithDefaults()
	require.Equal(t, memory.DefaultCapacity, o.Capacity)
	require.Equal(t, memory.DefaultLease, o.DefaultLease)
	require.NotNil(t, o.Now)
}

func TestCloseDeadlineReportsUnsettled(t *testing.T) {
	t.Parallel()
	b := memory.New(memory.Options{})
	require.NoError(t, b.Enqueue(context.Background(), tk("a")))
	lease(t, b, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := b.Close(ctx)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "Close: %v", err)
	require.ErrorContains(t, err, "1 deliveries unsettled")
}

// TestStaleReceiptsOfARecycledEntry: a delivery settles its own lease and
// no other: not the lease after its own ran out, of the same stored task,
// nor one of a task stored later in the recycled memory of an acked one.
// Every stale settlement fails with queue.ErrLeaseLost and changes
// nothing.
func TestStaleReceiptsOfARecycledEntry(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Unix(1_000_000, 0)}
	b := newBackend(t, memory.Options{Now: c.Now})
	ctx := context.Background()
	require.NoError(t, b.Enqueue(ctx, tk("a")))
	first := lease(t, b, 1)[0]
	c.add(time.Minute + time.Second) // its lease ran out
	second := lease(t, b, 1)[0]
	require.Equal(t, first.Task.ID, second.Task.ID)
	require.Equal(t, 2, second.Task.Attempt)
	for _, settle := range []func(*queue.Delivery) error{
		func(d *queue.Delivery) error { return b.Ack(ctx, d) },
		func(d *queue.Delivery) error { return b.Retry(ctx, d, time.Time{}) },
		func(d *queue.Delivery) error { return b.Release(ctx, d) },
		func(d *queue.Delivery) error { return b.DeadLetter(ctx, d, "x") },
		func(d *queue.Delivery) error { return b.Extend(ctx, d, time.Minute) },
	} {
		require.ErrorIs(t, settle(first), queue.ErrLeaseLost)
	}
	require.NoError(t, b.Ack(ctx, second))
	require.ErrorIs(t, b.Ack(ctx, second), queue.ErrLeaseLost, "acked already")

	require.NoError(t, b.Enqueue(ctx, tk("b"))) // stored in the acked task's entry
	third := lease(t, b, 1)[0]
	require.Equal(t, "b", string(third.Task.Payload))
	require.ErrorIs(t, b.Ack(ctx, first), queue.ErrLeaseLost)
	require.ErrorIs(t, b.DeadLetter(ctx, second, "x"), queue.ErrLeaseLost)
	st, err := b.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.InFlight)
	require.Zero(t, st.Dead)
	require.NoError(t, b.Ack(ctx, third))
}
