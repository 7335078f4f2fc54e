package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// strictInbox is an inbox whose Complete takes strictWrite to write the
// outcome, with its context: it fails when that context ends first, as
// a source that writes the outcome somewhere does.
type strictInbox struct{ inbox }

// strictWrite is how long strictInbox's Complete writes: a tenth of the
// grace the pool gives the telling after Stop's ctx ended (50ms).
const strictWrite = 5 * time.Millisecond

func (s *strictInbox) Complete(ctx context.Context, t *task.Task, o task.Outcome, reason string) error {
	write := time.NewTimer(strictWrite)
	defer write.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("tell the inbox: %w", ctx.Err())
	case <-write.C:
	}
	return s.inbox.Complete(ctx, t, o, reason)
}

// renewStuckDead is renewStuck (a delivery whose pre-run lease renewal
// outlives Stop's ctx) whose give-back dead-letters the task, as
// deadOnRelease's.
type renewStuckDead struct{ *renewStuck }

func (b renewStuckDead) Release(ctx context.Context, d *queue.Delivery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return deadOnRelease{b.Backend}.Release(ctx, d)
}

// TestGiveBackAfterStopsDeadlineTellsItsDeadLetter: a give-back that
// starts only after Stop's ctx ended (Stop's own, of the delivery of a
// handler that ignores its cancellation; a worker's, of a delivery it
// did not run, once a lease renewal that outlived Stop's ctx returned)
// and that the backend answers with a dead letter has that dead letter
// told to the task's source, also a source whose Complete honours its
// context. The source used to be told with Stop's ended ctx: its
// completion failed, and the source never heard of the dead letter in
// this run.
func TestGiveBackAfterStopsDeadlineTellsItsDeadLetter(t *testing.T) {
	t.Parallel()
	t.Run("abandoned handler", func(t *testing.T) {
		t.Parallel()
		be := deadOnRelease{newMemory(t)}
		src := &strictInbox{}
		comps, err := source.NewCompletions(src)
		require.NoError(t, err)
		started, stuck := make(chan struct{}), make(chan struct{})
		cfg := fast
		cfg.Concurrency, cfg.DrainTimeout = 1, 20*time.Millisecond
		p, err := worker.NewPool(worker.PoolParams{Queue: "orders", Config: cfg, Backend: be, Completions: comps,
			Router: mustRouter(t, task.Route{Kind: "mail.order", Queue: "orders", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
				close(started)
				<-stuck // ignores its cancellation
				return nil
			})})})
		require.NoError(t, err)
		tk := &task.Task{Kind: "mail.order", Queue: "orders", Payload: []byte("o1")}
		tk.SetHeader(task.HeaderCompletion, "inbox")
		require.NoError(t, be.Enqueue(context.Background(), tk))
		require.NoError(t, p.Start(context.Background()))
		within(t, started, "the handler")

		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		require.ErrorContains(t, p.Stop(ctx), "1 handlers that ignore cancellation")
		close(stuck)
		require.NoError(t, p.Stop(context.Background()))
		require.Equal(t, map[string][]task.Outcome{"o1": {task.DeadLettered}}, src.snapshot(), "last error: %s", p.Stats().LastError)
		require.Zero(t, p.Stats().CompletionFailed)
		require.Equal(t, int64(1), p.Stats().Dead)
	})
	t.Run("unrun delivery after a renewal", func(t *testing.T) {
		t.Parallel()
		be := renewStuckDead{&renewStuck{Backend: newMemory(t), entered: make(chan struct{}), gate: make(chan struct{})}}
		src := &strictInbox{}
		comps, err := source.NewCompletions(src)
		require.NoError(t, err)
		cfg := fast
		cfg.Concurrency, cfg.BatchSize, cfg.Lease = 1, 1, time.Minute
		p, err := worker.NewPool(worker.PoolParams{Queue: "orders", Config: cfg, Backend: be, Completions: comps,
			Router: mustRouter(t, task.Route{Kind: "mail.order", Queue: "orders", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
				return fmt.Errorf("the handler must not run: the pool stopped during the renewal")
			})})})
		require.NoError(t, err)
		tk := &task.Task{Kind: "mail.order", Queue: "orders", Payload: []byte("o1")}
		tk.SetHeader(task.HeaderCompletion, "inbox")
		require.NoError(t, be.Enqueue(context.Background(), tk))
		require.NoError(t, p.Start(context.Background()))
		within(t, be.entered, "the renewal of the delivery's lease")

		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, p.Stop(ctx), context.DeadlineExceeded)
		close(be.gate) // the renewal returns after Stop's ctx ended
		require.NoError(t, p.Stop(context.Background()))
		require.Equal(t, map[string][]task.Outcome{"o1": {task.DeadLettered}}, src.snapshot(), "last error: %s", p.Stats().LastError)
		require.Zero(t, p.Stats().CompletionFailed)
		require.Equal(t, int64(1), p.Stats().Dead)
		require.Zero(t, p.Stats().Processed, "the handler never ran")
	})
}

// TestAckAfterStopsCtxEndedIsTold: a handler that ignores its
// cancellation and succeeds just after Stop's ctx ended (before Stop
// gives its delivery back itself) is acked, and its source, also one
// whose Complete honours its context, is told it succeeded. It used to
// be told with Stop's ended ctx: the completion failed, and a task
// without a key was never told at all.
func TestAckAfterStopsCtxEndedIsTold(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	src := &strictInbox{}
	comps, err := source.NewCompletions(src)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background()) // Stop's: no deadline, ended by the test
	defer cancel()
	started, cancelled := make(chan struct{}), make(chan struct{})
	cfg := fast
	cfg.Concurrency, cfg.DrainTimeout = 1, 20*time.Millisecond
	p, err := worker.NewPool(worker.PoolParams{Queue: "orders", Config: cfg, Backend: be, Completions: comps,
		Router: mustRouter(t, task.Route{Kind: "mail.order", Queue: "orders", Handler: task.HandlerFunc(func(hctx context.Context, _ *task.Task) error {
			close(started)
			<-hctx.Done() // Stop drained and cancelled it
			close(cancelled)
			<-ctx.Done() // ignores that; done once Stop's ctx ended
			return nil
		})})})
	require.NoError(t, err)
	tk := &task.Task{Kind: "mail.order", Queue: "orders", Payload: []byte("o1")}
	tk.SetHeader(task.HeaderCompletion, "inbox")
	require.NoError(t, be.Enqueue(context.Background(), tk))
	require.NoError(t, p.Start(context.Background()))
	within(t, started, "the handler")

	stopped := make(chan error, 1)
	go func() { stopped <- p.Stop(ctx) }()
	within(t, cancelled, "the handler's cancellation")
	cancel()
	<-stopped
	require.NoError(t, p.Stop(context.Background()))
	st := p.Stats()
	require.Equal(t, int64(1), st.Succeeded, "acked: %s", st.LastError)
	require.Equal(t, map[string][]task.Outcome{"o1": {task.Succeeded}}, src.snapshot(), "last error: %s", st.LastError)
	require.Zero(t, st.CompletionFailed)
}
