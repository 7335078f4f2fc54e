package telemetry_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// TestRuntimeStopCancelIsNoFailure: a handler that its pool's Stop
// cancelled after the drain timeout did not fail: its task goes back to
// the queue uncounted (outcome returned), the pool does not count it as
// failed, and neither does plba.task.failed. It used to be counted there,
// so every stop with a long task running raised the failure rate.
func TestRuntimeStopCancelIsNoFailure(t *testing.T) {
	t.Parallel()
	be := newBackend(t)
	started := make(chan struct{}, 1)
	var rt *worker.Runtime
	h := startHostWith(t, be, hostOpts{routes: []task.Route{{
		Kind: "report.build", Queue: "reports",
		Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}),
	}}}, fx.Populate(&rt))
	require.NoError(t, h.enq.Enqueue(context.Background(), &task.Task{Kind: "report.build"}))
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never started")
	}
	p, ok := rt.Pool("reports")
	require.True(t, ok)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.Stop(ctx))
	st := p.Stats()
	require.Equal(t, int64(1), st.Returned)
	require.Zero(t, st.Failed, "the pool counts no failure")

	mfs := scrape(t, h.tel.MetricsHandler())
	labels := map[string]string{"queue": "reports", "kind": "report.build", "outcome": "returned"}
	require.Equal(t, float64(1), promValue(t, mfs, "plba_task_processed_total", labels))
	require.Zero(t, counterOr0(mfs, "plba_task_failed_total", labels), "a cancelled handler is no failure")
}
