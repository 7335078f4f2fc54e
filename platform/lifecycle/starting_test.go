package lifecycle

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
)

// TestStartsUnderwayNamesOnlyWhatBegan: a start that times out in its
// second component's hook was waiting for that component alone. The third,
// whose turn never came, is in state Starting as well (it was registered),
// but it is not what the start waited for.
func TestStartsUnderwayNamesOnlyWhatBegan(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(nil, nil)
	release := make(chan struct{})
	returned := make(chan struct{})
	app := fx.New(fx.NopLogger,
		fx.Invoke(func(lc fx.Lifecycle) {
			_, err := reg.Track(lc, "queue/x", StopHost, func(context.Context) error { return nil }, nil)
			require.NoError(t, err)
			_, err = reg.Track(lc, "hangs", StopHost, func(context.Context) error { // ignores its ctx
				defer close(returned)
				<-release
				return nil
			}, nil)
			require.NoError(t, err)
			_, err = reg.Track(lc, "pool/never", StopHost, func(context.Context) error { return nil }, nil)
			require.NoError(t, err)
			reg.MustRegister("source/owned", StayDegraded) // started by an owner that never ran
		}))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, app.Start(ctx), context.DeadlineExceeded)
	require.Equal(t, []string{"hangs"}, reg.StartsUnderway())
	never, _ := reg.Get("pool/never")
	require.Equal(t, Starting, never.State(), "registered, its start not begun")

	// An owner that starts a component itself says when its start begins.
	owned, _ := reg.Get("source/owned")
	owned.BeginStart()
	require.Equal(t, []string{"hangs", "source/owned"}, reg.StartsUnderway())
	owned.Set(Running, nil)
	require.Equal(t, []string{"hangs"}, reg.StartsUnderway(), "a start that ended is not underway")

	close(release)
	<-returned
}
