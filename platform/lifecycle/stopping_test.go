package lifecycle

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
)

// TestStopsUnderwayNamesOnlyWhatIsStopping: a stop that times out in a
// component's stop hook was waiting for that component alone: not for the
// one stopped before it (fx stops in reverse order), nor for the one
// whose turn never came, nor for one that finished on its own before.
func TestStopsUnderwayNamesOnlyWhatIsStopping(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(nil, nil)
	release := make(chan struct{})
	returned := make(chan struct{})
	app := fx.New(fx.NopLogger,
		fx.Invoke(func(lc fx.Lifecycle) {
			_, err := reg.Track(lc, "queue/never", StopHost, nil, func(context.Context) error { return nil })
			require.NoError(t, err)
			_, err = reg.Track(lc, "hangs", StopHost, nil, func(context.Context) error { // ignores its ctx
				defer close(returned)
				<-release
				return nil
			})
			require.NoError(t, err)
			_, err = reg.Track(lc, "pool/quick", StopHost, nil, func(context.Context) error { return nil })
			require.NoError(t, err)
			reg.MustRegister("source/owned", StayDegraded)
			reg.MustRegister("source/finished", StayDegraded)
		}))
	require.NoError(t, app.Start(context.Background()))
	require.Empty(t, reg.StopsUnderway(), "nothing stops while the host runs")
	finished, _ := reg.Get("source/finished")
	finished.Set(Stopped, nil) // ended on its own

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, app.Stop(ctx), context.DeadlineExceeded)
	require.Equal(t, []string{"hangs"}, reg.StopsUnderway())

	// An owner that stops a component itself says when its stop begins.
	owned, _ := reg.Get("source/owned")
	owned.BeginStop()
	finished.BeginStop() // its owner stops it again: it has ended already
	require.Equal(t, []string{"hangs", "source/owned"}, reg.StopsUnderway())
	owned.Set(Stopped, nil)
	require.Equal(t, []string{"hangs"}, reg.StopsUnderway(), "a stop that ended is not underway")

	close(release)
	<-returned
	require.Empty(t, reg.StopsUnderway())
}
