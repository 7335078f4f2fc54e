package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// TestLogsAPersonCanRead: a success is logged at debug, a retry at info
// with its attempt and delay, a dead letter exactly once at warn; nothing
// else is logged at warn or above.
func TestLogsAPersonCanRead(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	be := newMemory(t)
	cfg := fast
	cfg.MaxAttempts = 2
	h := task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		switch {
		case tk.Kind == "ok":
			return nil
		case tk.Kind == "flaky" && tk.Attempt == 1:
			return errors.New("flaky: try again")
		case tk.Kind == "flaky":
			return nil
		case tk.Kind == "bad":
			return task.Permanentf("refused")
		default:
			return errors.New("tired")
		}
	})
	var routes []task.Route
	for _, k := range []string{"ok", "flaky", "bad", "tired"} {
		routes = append(routes, task.Route{Kind: k, Handler: h})
	}
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Logger: zap.New(core),
		Router: mustRouter(t, routes...)})
	require.NoError(t, err)
	ctx := context.Background()
	for _, k := range []string{"ok", "flaky", "bad", "tired"} {
		require.NoError(t, be.Enqueue(ctx, &task.Task{ID: k + "-1", Kind: k, Queue: "default"}))
	}
	require.NoError(t, p.Start(ctx))
	require.Eventually(t, func() bool { st := p.Stats(); return st.Succeeded == 2 && st.Dead == 2 },
		30*time.Second, 5*time.Millisecond)
	require.NoError(t, p.Stop(ctx))

	succeeded := logs.FilterMessage("task succeeded").All()
	require.Len(t, succeeded, 2)
	for _, e := range succeeded {
		require.Equal(t, zapcore.DebugLevel, e.Level)
	}

	retries := logs.FilterMessage("task failed, retrying").All()
	require.Len(t, retries, 2, "flaky and tired, once each")
	for _, e := range retries {
		require.Equal(t, zapcore.InfoLevel, e.Level)
		f := e.ContextMap()
		require.EqualValues(t, 1, f["attempt"])
		require.Contains(t, f, "delay")
		require.Positive(t, f["delay"].(time.Duration))
		require.NotEmpty(t, f["error"])
	}

	var warn []observer.LoggedEntry
	for _, e := range logs.All() {
		if e.Level >= zapcore.WarnLevel {
			warn = append(warn, e)
		}
	}
	require.Len(t, warn, 2, "one line per dead letter, nothing else: %v", warn)
	reasons := map[string]string{}
	for _, e := range warn {
		require.Equal(t, "task dead-lettered", e.Message)
		f := e.ContextMap()
		reasons[f["task"].(string)] = f["reason"].(string)
	}
	require.Equal(t, map[string]string{"bad-1": "refused", "tired-1": "tired"}, reasons)
}

// A dead letter the backend made on its own (here the memory backend's
// MaxDeliveries after an expired lease) is logged exactly once at warn.
func TestBackendsDeadLetterLoggedOnce(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.InfoLevel)
	be := memory.New(memory.Options{MaxDeliveries: 1})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	src := &inbox{emit: []string{"o1"}}
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": fast}, Routes: []task.Route{orderRoute},
		Sources: []source.Source{src}, Logger: zap.New(core)})
	require.NoError(t, err)
	require.NoError(t, rt.StartPools(context.Background()))
	p, _ := rt.Pool("orders")
	p.Pause() // a consumer elsewhere takes the task instead
	require.NoError(t, rt.StartSources(context.Background()))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := be.Lease(ctx, "orders", 1, 20*time.Millisecond) // and dies
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Eventually(t, func() bool {
		_, _ = be.Stats(context.Background(), "orders") // the backend notices the expired lease
		return len(src.snapshot()) == 1
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, rt.Stop(context.Background()))

	var warn []observer.LoggedEntry
	for _, e := range logs.All() {
		if e.Level >= zapcore.WarnLevel {
			warn = append(warn, e)
		}
	}
	require.Len(t, warn, 1, "%v", warn)
	require.Equal(t, "task dead-lettered by the backend", warn[0].Message)
	require.Equal(t, "lease expired 1 times", warn[0].ContextMap()["reason"])
}
