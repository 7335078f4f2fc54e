package worker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// deadOnRelease is a memory backend at its delivery limit, as JetStream's
// Release on the last delivery max_deliver allows whose copy a full work
// stream refuses: the give-back dead-letters the task instead and says so
// with queue.ErrDeadLettered and the stored reason (Delivery.DeadReason).
type deadOnRelease struct{ *memory.Backend }

const deadOnReleaseReason = "given back without a result on the last of 1 deliveries (max_deliver)"

func (b deadOnRelease) Release(ctx context.Context, d *queue.Delivery) error {
	if err := b.Backend.DeadLetter(ctx, d, deadOnReleaseReason); err != nil {
		return err
	}
	d.DeadReason = deadOnReleaseReason
	return fmt.Errorf("release on the last of 1 deliveries (max_deliver): %w", queue.ErrDeadLettered)
}

// finishedLog records every outcome and dead-letter reason Finished sees.
type finishedLog struct {
	task.NopObserver
	mu      sync.Mutex
	outs    []task.Outcome
	reasons []string
}

func (o *finishedLog) Finished(_ context.Context, _ *task.Task, out task.Outcome, _ error, reason string, _ time.Duration) {
	o.mu.Lock()
	o.outs = append(o.outs, out)
	o.reasons = append(o.reasons, reason)
	o.mu.Unlock()
}

func (o *finishedLog) snapshot() ([]task.Outcome, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]task.Outcome(nil), o.outs...), append([]string(nil), o.reasons...)
}

// TestAbandonedHandlerHearsTheDeadLetterItsGiveBackMade: Stop gives back
// the delivery of a handler that ignores its cancellation itself; when the
// backend answers that give-back by dead-lettering the task
// (queue.ErrDeadLettered), the source is told "dead-lettered", and the
// handler returning afterwards is reported to the observer as that dead
// letter with its reason, as Stats count it. It used to be reported as
// returned: the observer and the source were told two different outcomes
// of one delivery.
func TestAbandonedHandlerHearsTheDeadLetterItsGiveBackMade(t *testing.T) {
	t.Parallel()
	for _, ret := range []struct {
		name string
		err  error
	}{{"returns nil", nil}, {"returns its ctx's error", context.Canceled}} {
		t.Run(ret.name, func(t *testing.T) {
			t.Parallel()
			be := deadOnRelease{newMemory(t)}
			src := &inbox{}
			comps, err := source.NewCompletions(src)
			require.NoError(t, err)
			obs := &finishedLog{}
			started, stuck := make(chan struct{}), make(chan struct{})
			cfg := fast
			cfg.Concurrency, cfg.DrainTimeout = 1, 20*time.Millisecond
			p, err := worker.NewPool(worker.PoolParams{Queue: "orders", Config: cfg, Backend: be, Completions: comps, Observer: obs,
				Router: mustRouter(t, task.Route{Kind: "mail.order", Queue: "orders", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
					close(started)
					<-stuck // ignores its cancellation
					return ret.err
				})})})
			require.NoError(t, err)
			tk := &task.Task{Kind: "mail.order", Queue: "orders", Payload: []byte("o1")}
			tk.SetHeader(task.HeaderCompletion, "inbox")
			require.NoError(t, be.Enqueue(context.Background(), tk))
			require.NoError(t, p.Start(context.Background()))
			within(t, started, "the handler")

			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err = p.Stop(ctx)
			require.ErrorContains(t, err, "1 handlers that ignore cancellation")
			require.Eventually(t, func() bool { return len(src.snapshot()) == 1 }, 10*time.Second, time.Millisecond)
			require.Equal(t, map[string][]task.Outcome{"o1": {task.DeadLettered}}, src.snapshot())

			close(stuck)
			require.NoError(t, p.Stop(context.Background()))
			outs, reasons := obs.snapshot()
			require.Equal(t, []task.Outcome{task.DeadLettered}, outs, "the observer hears what the source heard")
			require.Equal(t, []string{deadOnReleaseReason}, reasons)
			st := p.Stats()
			require.Equal(t, int64(1), st.Dead)
			require.Zero(t, st.Returned)
			require.Equal(t, int64(1), st.Processed)
			dead, err := be.ListDead(context.Background(), "orders", 0)
			require.NoError(t, err)
			require.Len(t, dead, 1)
			require.Equal(t, deadOnReleaseReason, dead[0].Reason)
		})
	}
}
