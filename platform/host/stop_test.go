package host

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/plba/plba/platform/source"
)

// stuckSource is a source whose Run ignores its context until release
// closes.
type stuckSource struct{ release chan struct{} }

func (stuckSource) Name() string { return "stuck" }
func (s stuckSource) Run(context.Context, source.Emitter) error {
	<-s.release
	return nil
}

// A stop that times out names what it waited for: the source whose Run
// ignores its cancellation, by its component (fx gives up at the deadline
// without waiting for the hook's own error), and how long it took: the
// stages give up by their shares of stop_timeout, so a host can end well
// before the whole of it, and used to say it timed out "after 1s"
// regardless. Before, it said only "context deadline exceeded".
func TestStopTimeoutNamesWhatItWaitedFor(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	app := App("stuck", fx.Options(
		fx.Provide(source.AsSource(func() stuckSource { return stuckSource{release: release} })),
		fx.Invoke(func(lc fx.Lifecycle, sd fx.Shutdowner) {
			lc.Append(fx.Hook{OnStart: func(context.Context) error {
				go func() { _ = sd.Shutdown() }() // owned by fx: it only signals the host to stop
				return nil
			}})
		}),
	))
	r := cli(t, []string{"run", "--set", "admin.listen=127.0.0.1:0", "--set", "log.level=error",
		"--set", "lifecycle.stop_timeout=4s"}, app)
	require.Equal(t, ExitFailure, r.code, r.stderr)
	m := regexp.MustCompile(`stop: stop timed out: gave up after ([0-9.]+m?s) of its 4s \(lifecycle.stop_timeout\) \(waiting for [^)]*source/stuck[^)]*\)`).FindStringSubmatch(r.stderr)
	require.NotNil(t, m, r.stderr)
	// The sources' share is half of it (2s); the rest stops at once: well
	// before the whole 4s, also on a loaded machine.
	took, err := time.ParseDuration(m[1])
	require.NoError(t, err)
	require.Less(t, took, 4*time.Second, "it says how long it took, not the whole stop_timeout")
}
