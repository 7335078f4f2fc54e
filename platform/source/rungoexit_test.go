package source_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// TestRunGoexitIsAFailureAndTheSourceIsRestarted: a source whose Run
// ends its goroutine with runtime.Goexit (testing's FailNow, say) instead
// of returning has failed, as one that panics: it is restarted with
// back-off and its error says so. It used to end the supervisor's loop
// for the source: never restarted, and shown running for ever.
func TestRunGoexitIsAFailureAndTheSourceIsRestarted(t *testing.T) {
	t.Parallel()
	src := &funcSource{name: "goexit", run: endsFirstRun(runtime.Goexit)}
	reg := lifecycle.NewRegistry(nil, nil)
	cfg := source.Config{RestartInitial: 10 * time.Millisecond, RestartMax: 20 * time.Millisecond, RestartJitter: -1}
	col := &collector{}
	s, err := source.NewSupervisor(cfg, col, reg, nil, src)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	defer stopSupervisor(t, s)

	require.Eventually(t, func() bool { return len(col.all()) == 1 }, 20*time.Second, time.Millisecond,
		"the source is restarted after its Run called runtime.Goexit")
	st := s.Stats()[0]
	require.Equal(t, int64(1), st.Restarts)
	require.Equal(t, int64(1), st.Errors)
	require.Contains(t, st.LastError, task.ErrGoexit.Error())
	require.Equal(t, lifecycle.Running, componentState(t, reg, "goexit").State)
}

// endsFirstRun is a Run that ends its first call with end (a panic,
// runtime.Goexit), and in every later call emits one task and runs until
// its context ends.
func endsFirstRun(end func()) func(context.Context, source.Emitter) error {
	var runs atomic.Int64
	return func(ctx context.Context, emit source.Emitter) error {
		if runs.Add(1) == 1 {
			end()
		}
		if err := emit.Emit(ctx, &task.Task{Kind: "k"}); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	}
}
