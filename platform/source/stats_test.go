package source_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// TestStatsShowStateLastPollAndLastEmit: a source's Stats carry its
// component state and when it last polled and last emitted (pushed), so
// that an operator sees a source that went quiet.
func TestStatsShowStateLastPollAndLastEmit(t *testing.T) {
	t.Parallel()
	polls := 0
	poller := source.Poll("poller", 5*time.Millisecond, 0, func(ctx context.Context, emit source.Emitter) error {
		polls++
		if polls == 2 {
			return emit.Emit(ctx, &task.Task{Kind: "k"})
		}
		return nil
	})
	pusher := &flaky{name: "pusher"}
	pusher.healed.Store(true)
	reg := lifecycle.NewRegistry(nil, nil)
	before := time.Now()
	s, err := source.NewSupervisor(source.Config{}, &collector{}, reg, nil, poller, pusher)
	require.NoError(t, err)
	for _, st := range s.Stats() {
		require.True(t, st.LastPoll.IsZero(), "%s: no poll before start", st.Name)
		require.True(t, st.LastEmit.IsZero(), "%s: no emit before start", st.Name)
	}
	require.NoError(t, s.Start(context.Background()))
	defer stopSupervisor(t, s)
	byName := func() map[string]source.Stats {
		out := map[string]source.Stats{}
		for _, st := range s.Stats() {
			out[st.Name] = st
		}
		return out
	}
	require.Eventually(t, func() bool {
		m := byName()
		return !m["poller"].LastEmit.IsZero() && !m["pusher"].LastEmit.IsZero()
	}, 10*time.Second, time.Millisecond)
	m := byName()
	require.Equal(t, lifecycle.Running, m["poller"].State)
	require.Equal(t, lifecycle.Running, m["pusher"].State)
	require.False(t, m["poller"].LastPoll.Before(before), "the poller polled after start")
	require.True(t, m["pusher"].LastPoll.IsZero(), "a source that does not poll has no last poll")
	require.False(t, m["pusher"].LastEmit.Before(before))

	require.NoError(t, s.Pause("poller"))
	require.Eventually(t, func() bool { return byName()["poller"].State == lifecycle.Paused }, 10*time.Second, time.Millisecond)
}
