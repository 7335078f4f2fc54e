package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// abandonedThenSlow is a memory backend whose Release of task "a" closes
// aGone, and whose Release of task "b" waits for bAfter to close, then
// 200ms more, ignoring its ctx, before it gives the delivery back.
type abandonedThenSlow struct {
	*memory.Backend
	once   sync.Once
	aGone  chan struct{}
	bAfter chan struct{}
}

func (b *abandonedThenSlow) Release(_ context.Context, d *queue.Delivery) error {
	switch d.Task.ID {
	case "a":
		b.once.Do(func() { close(b.aGone) })
	case "b":
		<-b.bAfter
		time.Sleep(200 * time.Millisecond)
	}
	return b.Backend.Release(context.Background(), d)
}

// TestStopWaitsForASettlementOnceTheAbandonedHandlerReturned: Stop, whose
// ctx ended, gives back the delivery of a handler that ignores its
// cancellation (a) at its grace's end; that handler returns just then,
// while the give-back of another handler, which returned at once (b),
// still runs. Stop waits for that give-back within its spare graces and
// returns nil once the pool ended. It stopped waiting as soon as no more
// workers were in flight than handlers it had given back, counting the
// one that had returned as if it still ran: it returned an error naming
// "1 handlers that ignore cancellation (tasks a)", a handler that had
// returned, and not the give-back still running.
func TestStopWaitsForASettlementOnceTheAbandonedHandlerReturned(t *testing.T) {
	t.Parallel()
	const grace = 500 * time.Millisecond
	be := &abandonedThenSlow{Backend: newMemory(t), aGone: make(chan struct{}), bAfter: make(chan struct{})}
	started := make(chan string, 2)
	cfg := fast
	cfg.Concurrency = 2
	cfg.Lease = 30 * time.Second
	cfg.DrainTimeout = time.Minute // Stop's ctx ends first
	obs := &outcomes{}
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Observer: obs,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(ctx context.Context, tk *task.Task) error {
			started <- tk.ID
			<-ctx.Done()
			if tk.ID == "b" {
				return ctx.Err()
			}
			<-be.aGone // ignores its cancellation until Stop gave its delivery back
			defer close(be.bAfter)
			return nil
		})})})
	require.NoError(t, err)
	worker.SetStopGrace(p, grace)
	for _, id := range []string{"a", "b"} {
		require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: id, Kind: "k", Queue: "default"}))
	}
	require.NoError(t, p.Start(context.Background()))
	within(t, started, "a handler to start")
	within(t, started, "the other handler to start")

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Stop's ctx has ended: the handlers are cancelled at once
	require.NoError(t, p.Stop(ctx), "the pool ended within Stop's graces")
	require.Equal(t, int64(2), p.Stats().Returned)
	outs, _ := obs.snapshot()
	require.Equal(t, []task.Outcome{task.Returned, task.Returned}, outs)
}
