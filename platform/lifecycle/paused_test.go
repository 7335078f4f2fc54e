package lifecycle_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
)

// A component an operator paused is shown paused and keeps the host
// ready; one degraded does not.
func TestPausedCountsAsReady(t *testing.T) {
	r := lifecycle.NewRegistry(nil, nil)
	c := r.MustRegister("pool/x", lifecycle.StayDegraded)
	c.Set(lifecycle.Paused, nil)
	require.Equal(t, lifecycle.Paused, r.Snapshot()[0].State)
	_, ok := r.ReadyRunning()
	require.True(t, ok)
	c.Set(lifecycle.Degraded, nil)
	why, ok := r.ReadyRunning()
	require.False(t, ok)
	require.Equal(t, "pool/x is degraded", why)
}
