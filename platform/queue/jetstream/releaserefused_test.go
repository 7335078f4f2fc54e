package jetstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// TestReleaseRefusedCountsTheDelivery: a Release whose copy the work
// stream refuses (bounded by max_msgs, full with the task itself) gives
// the delivery back with a negative ack, and says so with an error: the
// next delivery is the next attempt, as the server counts it. Release
// used to return nil, and the pool counted a give-back that did not count
// although it did.
func TestReleaseRefusedCountsTheDelivery(t *testing.T) {
	t.Parallel()
	onEachServer(t, jetstream.Config{MaxMsgs: 1, MaxDeliver: 3, AckWait: 5 * time.Second, PublishTimeout: time.Second},
		func(t *testing.T, config func(t *testing.T) jetstream.Config) {
			b := openBackend(t, config(t))
			ctx := t.Context()
			const q = "release-refused"
			require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t", Key: "k-1", Kind: "k", Queue: q}))
			d := leaseOne(t, b, q)
			require.Equal(t, 1, d.Task.Attempt)
			err := b.Release(ctx, d)
			require.Error(t, err, "the copy was refused: the delivery was not given back uncounted")
			require.NotErrorIs(t, err, queue.ErrLeaseLost)
			require.NotErrorIs(t, err, queue.ErrDeadLettered)
			require.Contains(t, err.Error(), "negative ack")
			require.WithinDuration(t, time.Now(), d.LeaseUntil, 5*time.Second, "the lease ended with the negative ack")

			again := leaseOne(t, b, q)
			require.Equal(t, "t", again.Task.ID)
			require.Equal(t, 2, again.Task.Attempt, "the delivery counted, as the error said")
			require.NoError(t, b.Ack(ctx, again))
		})
}

// TestReleaseRefusedOnTheLastDeliveryDeadLettersSaying: a Release on the
// last delivery max_deliver allows, whose copy the full work stream
// refuses, cannot give the task back at all: after that delivery the
// server delivers the message no more. The copy is offered again while
// the lease leaves time, then the task is dead-lettered with a reason
// that says what happened, with the attempts that ran, and Release
// returns queue.ErrDeadLettered. Release used to return nil after a
// negative ack, and the max-deliveries advisory dead-lettered the task as
// if its lease had expired on a last delivery that ran.
func TestReleaseRefusedOnTheLastDeliveryDeadLettersSaying(t *testing.T) {
	t.Parallel()
	onEachServer(t, jetstream.Config{MaxMsgs: 1, MaxDeliver: 2, AckWait: 5 * time.Second, PublishTimeout: time.Second},
		func(t *testing.T, config func(t *testing.T) jetstream.Config) {
			b := openBackend(t, config(t))
			ctx := t.Context()
			const q = "release-last"
			require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t", Key: "k-1", Kind: "k", Queue: q}))
			d := leaseOne(t, b, q)
			require.NoError(t, b.Retry(ctx, d, time.Now()))
			d = leaseOne(t, b, q)
			require.Equal(t, 2, d.Task.Attempt, "the last delivery max_deliver allows")

			err := b.Release(ctx, d)
			require.ErrorIs(t, err, queue.ErrDeadLettered)
			require.Contains(t, d.DeadReason, "given back without a result on the last of 2 deliveries")
			require.Contains(t, d.DeadReason, "maximum messages exceeded", "why its copy was not stored")

			dead, err := b.ListDead(ctx, q, 0)
			require.NoError(t, err)
			require.Len(t, dead, 1)
			require.Equal(t, "t", dead[0].Task.ID)
			require.Equal(t, d.DeadReason, dead[0].Reason)
			require.Equal(t, 1, dead[0].Task.Attempt, "the attempt that ran, not the delivery given back")
			require.Eventually(t, func() bool {
				st, err := b.Stats(ctx, q)
				return err == nil && st.Ready+st.InFlight+st.Delayed == 0 && st.Dead == 1
			}, 20*time.Second, 50*time.Millisecond, "the task is its dead letter, nothing else")
		})
}

// TestReleaseOnTheLastDeliveryWaitsForRoom: on the last delivery
// max_deliver allows, a Release whose copy the full work stream refuses
// offers it again until another task's ack makes room, and then gives
// the task back uncounted. It used to give it back with a negative ack
// at once, which ended its deliveries: dead-lettered unrun.
func TestReleaseOnTheLastDeliveryWaitsForRoom(t *testing.T) {
	t.Parallel()
	onEachServer(t, jetstream.Config{MaxMsgs: 2, MaxDeliver: 1, AckWait: 5 * time.Second, PublishTimeout: time.Second},
		func(t *testing.T, config func(t *testing.T) jetstream.Config) {
			b := openBackend(t, config(t))
			ctx := t.Context()
			const q = "release-room"
			require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "a", Kind: "k", Queue: q}))
			require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "b", Kind: "k", Queue: q}))
			first := leaseOne(t, b, q)
			require.NoError(t, b.Extend(ctx, first, 30*time.Second))
			released := make(chan error, 1)
			go func() { released <- b.Release(ctx, first) }()
			select {
			case err := <-released:
				t.Fatalf("Release returned while the stream was full: %v", err)
			case <-time.After(300 * time.Millisecond):
			}
			other := leaseOne(t, b, q)
			require.NoError(t, b.Ack(ctx, other))
			select {
			case err := <-released:
				require.NoError(t, err, "room again: the copy is stored, the original acked")
			case <-time.After(20 * time.Second):
				t.Fatal("Release still waiting after a task left the stream")
			}
			again := leaseOne(t, b, q)
			require.Equal(t, first.Task.ID, again.Task.ID)
			require.Equal(t, 1, again.Task.Attempt, "given back uncounted")
			require.NoError(t, b.Ack(ctx, again))
			dead, err := b.ListDead(ctx, q, 0)
			require.NoError(t, err)
			require.Empty(t, dead)
		})
}

// TestPoolStopOnALastDeliveryItCannotGiveBack: a worker pool stopping
// cancels a handler on the last delivery max_deliver allows, in a work
// stream full with that task (max_msgs): the give-back's copy is never
// stored, and the backend dead-letters the task, saying so. The pool
// counts a failed release and a dead letter, not a task given back. It
// counted a give-back (Stats.Returned) that had ended the task's
// deliveries.
func TestPoolStopOnALastDeliveryItCannotGiveBack(t *testing.T) {
	t.Parallel()
	cfg := embeddedConfig(t.TempDir())
	cfg.MaxMsgs, cfg.MaxDeliver, cfg.AckWait, cfg.PublishTimeout = 1, 1, 2*time.Second, time.Second
	b := openBackend(t, cfg)
	const q = "stop-last"
	started := make(chan struct{}, 1)
	router, err := worker.NewRouter([]task.Route{{Kind: "k", Queue: q, Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})}})
	require.NoError(t, err)
	p, err := worker.NewPool(worker.PoolParams{Queue: q, Backend: b, Router: router,
		Config: worker.PoolConfig{Concurrency: 1, Lease: 3 * time.Second, DrainTimeout: 100 * time.Millisecond}})
	require.NoError(t, err)
	require.NoError(t, b.Enqueue(t.Context(), &task.Task{ID: "t", Kind: "k", Queue: q}))
	require.NoError(t, p.Start(t.Context()))
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler did not start")
	}
	sctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, p.Stop(sctx))

	st := p.Stats()
	require.Zero(t, st.Returned, "not given back: its deliveries ended")
	require.Equal(t, worker.SettleFailures{Release: 1}, st.SettleFailed)
	require.EqualValues(t, 1, st.Dead)
	require.Contains(t, st.LastError, queue.ErrDeadLettered.Error())
	dead, err := b.ListDead(t.Context(), q, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Contains(t, dead[0].Reason, "given back without a result on the last of 1 deliveries")
	require.Zero(t, dead[0].Task.Attempt, "its only delivery did not finish")
}
