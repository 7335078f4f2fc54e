package host

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/plba/plba/platform/health"
)

// The host reads not ready until its start has returned: a start hook
// that runs after every component is up (the last one appended) sees
// readiness off, and it comes on once the start ends. Before, /readyz
// answered 200 while the start was still under way, and an orchestrator
// that sent SIGTERM on seeing it abandoned the start (exit 1 at once,
// without the shutdown delay).
func TestNotReadyUntilTheStartReturned(t *testing.T) {
	var readyDuringStart, readyAfterStart atomic.Bool
	var whyDuringStart atomic.Value
	app := App("late", fx.Invoke(func(lc fx.Lifecycle, hr *health.Registry, sd fx.Shutdowner) {
		lc.Append(fx.Hook{OnStart: func(context.Context) error {
			// The registry's checks run right away; give them time to
			// pass, as they would before an orchestrator's probe.
			deadline := time.Now().Add(time.Second)
			for time.Now().Before(deadline) {
				ok, why := hr.Ready()
				whyDuringStart.Store(why)
				if ok {
					readyDuringStart.Store(true)
				}
				time.Sleep(10 * time.Millisecond)
			}
			go func() { // owned by fx: it only waits for readiness, then signals the host to stop
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					if ok, _ := hr.Ready(); ok {
						readyAfterStart.Store(true)
						break
					}
				}
				_ = sd.Shutdown()
			}()
			return nil
		}})
	}))
	r := cli(t, []string{"run", "--set", "admin.listen=127.0.0.1:0", "--set", "log.level=error"}, app)
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.False(t, readyDuringStart.Load(), "ready while the start was under way")
	require.Equal(t, "starting", whyDuringStart.Load())
	require.True(t, readyAfterStart.Load(), "never ready after the start")
}
