package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/queuetest"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// isPanics is a backend's error whose Is method panics.
type isPanics struct{}

func (isPanics) Error() string   { return "connection reset" }
func (isPanics) Is(error) bool   { panic("Is bug") }
func (isPanics) Unwrap() []error { return nil }

// nilCause is an error type whose methods need a non-nil pointer.
type nilCause struct{ msg string }

func (e *nilCause) Error() string { return e.msg }
func (e *nilCause) Is(error) bool { return e.msg == "" }

// badBackendErrors are errors a backend call may return that errors.Is
// cannot examine without a panic: an Is method that panics, and a
// wrapped nil pointer of an error type (its Is dereferences it). Their
// Error methods work: they print.
var badBackendErrors = map[string]error{
	"Is panics":     isPanics{},
	"wraps nil ptr": fmt.Errorf("publish: %w", (*nilCause)(nil)),
}

// TestRetryRefusedWithAnUnexaminableErrorIsAFailedSettlement: a Retry
// the backend refuses with an error whose Is panics is a refused
// settlement like any other: counted (SettleFailed.Retry), reported as
// returned. The panic came from the pool's errors.Is(err,
// queue.ErrDeadLettered) on it, was taken for one after the settlement,
// and the refusal was not counted.
func TestRetryRefusedWithAnUnexaminableErrorIsAFailedSettlement(t *testing.T) {
	t.Parallel()
	for name, bad := range badBackendErrors {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			be := queuetest.NewFaulty(newMemory(t))
			be.Inject(queuetest.OpRetry, queuetest.Fault{Err: bad, Times: 1})
			obs := &outcomes{}
			cfg := fast
			cfg.Concurrency, cfg.Lease = 1, shortLease // the unsettled delivery comes back soon
			p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Observer: obs,
				Router: mustRouter(t, task.Route{Kind: "k", MaxAttempts: 3, Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
					return fmt.Errorf("try again")
				})})})
			require.NoError(t, err)
			require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "t1", Kind: "k", Queue: "default"}))
			require.NoError(t, p.Start(context.Background()))
			t.Cleanup(func() { require.NoError(t, p.Stop(context.Background())) })
			require.Eventually(t, func() bool { return p.Stats().Processed >= 1 }, 10*time.Second, time.Millisecond)

			st := p.Stats()
			require.Equal(t, int64(1), st.SettleFailed.Retry, "the refused retry is counted")
			outs, errs := obs.snapshot()
			require.Equal(t, task.Returned, outs[0])
			require.ErrorContains(t, errs[0], "retry task t1")
			require.Contains(t, st.LastError, "retry task t1")
		})
	}
}

// TestPauseGiveBackRefusedWithAnUnexaminableError: a Release, giving
// back the hand-over buffer at Pause, that the backend refuses with an
// error errors.Is cannot examine is a failed release, counted; Pause
// returns and the pool keeps every reservation. The panic of the pool's
// errors.Is on the error escaped into Pause's caller (and, on the
// fetcher's or Stop's give-backs, would have ended the process).
func TestPauseGiveBackRefusedWithAnUnexaminableError(t *testing.T) {
	t.Parallel()
	for name, bad := range badBackendErrors {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			be := queuetest.NewFaulty(newMemory(t))
			h := newHolder()
			cfg := fast
			cfg.Concurrency, cfg.BatchSize, cfg.Lease = 1, 2, shortLease
			p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
				Router: mustRouter(t, h.route("hold"))})
			require.NoError(t, err)
			for _, id := range []string{"a", "b", "c"} {
				require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: id, Kind: "hold", Queue: "default"}))
			}
			require.NoError(t, p.Start(context.Background()))
			t.Cleanup(func() {
				h.release()
				require.NoError(t, p.Stop(context.Background()))
			})
			require.Eventually(t, func() bool {
				st, err := be.Stats(context.Background(), "default")
				return err == nil && st.InFlight == 3 && p.Stats().InFlight == 1
			}, 10*time.Second, time.Millisecond, "one runs, two wait in the buffer")
			be.Inject(queuetest.OpRelease, queuetest.Fault{Err: bad})

			require.NotPanics(t, p.Pause)
			require.Equal(t, int64(2), p.Stats().SettleFailed.Release)
			be.Clear(queuetest.OpRelease)

			// The reservations are back: once the leases of the two ran
			// out, the pool leases and runs them.
			h.release()
			p.Resume()
			require.Eventually(t, func() bool { return p.Stats().Succeeded == 3 }, 10*time.Second, time.Millisecond)
		})
	}
}
