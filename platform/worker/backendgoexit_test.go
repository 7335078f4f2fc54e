package worker_test

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// goexitBackend is a memory backend whose first call of op ends its
// goroutine with runtime.Goexit (a backend's code calling testing's
// FailNow, say) without doing anything.
type goexitBackend struct {
	*memory.Backend
	op   string
	done atomic.Bool
}

func (b *goexitBackend) exit(op string) {
	if op == b.op && b.done.CompareAndSwap(false, true) {
		runtime.Goexit()
	}
}

func (b *goexitBackend) Ack(ctx context.Context, d *queue.Delivery) error {
	b.exit(worker.OpAck)
	return b.Backend.Ack(ctx, d)
}

func (b *goexitBackend) Retry(ctx context.Context, d *queue.Delivery, at time.Time) error {
	b.exit(worker.OpRetry)
	return b.Backend.Retry(ctx, d, at)
}

func (b *goexitBackend) DeadLetter(ctx context.Context, d *queue.Delivery, reason string) error {
	b.exit(worker.OpDeadLetter)
	return b.Backend.DeadLetter(ctx, d, reason)
}

func (b *goexitBackend) Release(ctx context.Context, d *queue.Delivery) error {
	b.exit(worker.OpRelease)
	return b.Backend.Release(ctx, d)
}

// TestBackendGoexitInASettlementIsObserved: a settlement whose backend
// call ends the worker's goroutine (runtime.Goexit) is a failed
// settlement of an unknown outcome, like one that panics: counted
// (SettleFailed), and the observer that saw the delivery start hears it
// finish, returned, with the call named in its error. The worker is
// replaced and the delivery comes back when its lease ends. The
// observer used to hear nothing of that delivery (telemetry's span never
// ended), and the refusal went uncounted.
func TestBackendGoexitInASettlementIsObserved(t *testing.T) {
	t.Parallel()
	handlers := map[string]func() error{
		worker.OpAck:        func() error { return nil },
		worker.OpRetry:      func() error { return errors.New("try again") },
		worker.OpDeadLetter: func() error { return task.Permanentf("no such order") },
	}
	for op, result := range handlers {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			be := &goexitBackend{Backend: newMemory(t), op: op}
			obs := &startsAndEnds{}
			cfg := fast
			cfg.Concurrency, cfg.Lease = 1, shortLease
			p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Observer: obs,
				Router: mustRouter(t, task.Route{Kind: "k", MaxAttempts: 3, Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
					return result()
				})})})
			require.NoError(t, err)
			require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "t1", Kind: "k", Queue: "default"}))
			require.NoError(t, p.Start(context.Background()))
			t.Cleanup(func() { require.NoError(t, p.Stop(context.Background())) })

			require.Eventually(t, func() bool { return p.Stats().WorkerRestarts == 1 && p.Stats().Processed >= 1 },
				10*time.Second, time.Millisecond, "stats %+v", p.Stats())
			require.Eventually(t, func() bool { outs, _ := obs.snapshot(); return len(outs) >= 1 }, 5*time.Second, time.Millisecond,
				"the observer saw %d deliveries start, none finish", obs.starts.Load())
			outs, errs := obs.snapshot()
			require.Equal(t, task.Returned, outs[0], "whether the backend settled it is unknown")
			var se *task.SettleError
			require.ErrorAs(t, errs[0], &se)
			require.ErrorContains(t, errs[0], "runtime.Goexit")
			st := p.Stats()
			require.Equal(t, int64(1), map[string]int64{worker.OpAck: st.SettleFailed.Ack, worker.OpRetry: st.SettleFailed.Retry,
				worker.OpDeadLetter: st.SettleFailed.DeadLetter}[op], "the failed settlement is counted: %+v", st.SettleFailed)
			require.Zero(t, st.Succeeded+st.Retried+st.Dead, "an outcome that did not happen")
			// The delivery comes back once its lease ended and is settled then.
			require.Eventually(t, func() bool { outs, _ := obs.snapshot(); return len(outs) == 2 }, 10*time.Second, time.Millisecond)
			require.Equal(t, obs.starts.Load(), int64(2))
		})
	}
}
