package source_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/source"
)

// TestAnEmptyEmitDoesNotShowTheSourceWorks: an Emit of no task emits
// nothing, so it is not the sign of a working source that an emitted
// task is: a source whose every Run emits an empty batch and then fails
// is shown failed past the crash-loop limit (its back-off grows), and
// its LastEmit stays zero.
func TestAnEmptyEmitDoesNotShowTheSourceWorks(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	src := &funcSource{name: "empty", run: func(ctx context.Context, emit source.Emitter) error {
		runs.Add(1)
		if err := emit.Emit(ctx); err != nil {
			return err
		}
		return errors.New("cannot acknowledge upstream")
	}}
	reg := lifecycle.NewRegistry(nil, nil)
	cfg := source.Config{RestartInitial: 10 * time.Millisecond, RestartMax: 20 * time.Millisecond, RestartJitter: -1,
		CrashLoopLimit: 2, CrashLoopWindow: time.Minute}
	s, err := source.NewSupervisor(cfg, &collector{}, reg, nil, src)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	defer stopSupervisor(t, s)

	require.Eventually(t, func() bool { return runs.Load() >= 6 }, 20*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return componentState(t, reg, "empty").State == lifecycle.Failed }, 20*time.Second,
		time.Millisecond, "a source that fails every Run after emitting nothing is in a crash loop (state %s)",
		componentState(t, reg, "empty").State)
	st := s.Stats()[0]
	require.Zero(t, st.Emitted)
	require.True(t, st.LastEmit.IsZero(), "nothing was emitted (last emit %s)", st.LastEmit)
}
