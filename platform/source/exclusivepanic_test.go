package source_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// TestExclusiveRunGoexitReleasesTheLease: an exclusive source whose Run
// ends its goroutine with runtime.Goexit releases its lease on the way
// out, as when it returns: its restarted Run (or another host) takes the
// lease again. It used to keep the lease held for ever (a local one), so
// the restarted Run waited for it and never ran.
func TestExclusiveRunGoexitReleasesTheLease(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	inner := &funcSource{name: "mailbox", run: func(ctx context.Context, emit source.Emitter) error {
		if runs.Add(1) == 1 {
			runtime.Goexit()
		}
		if err := emit.Emit(ctx, &task.Task{Kind: "k"}); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	}}
	src := source.Exclusive(inner, lease.NewLocal("source/mailbox", "this-host"))
	cfg := source.Config{RestartInitial: 10 * time.Millisecond, RestartMax: 20 * time.Millisecond, RestartJitter: -1}
	col := &collector{}
	s, err := source.NewSupervisor(cfg, col, nil, nil, src)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	defer stopSupervisor(t, s)

	require.Eventually(t, func() bool { return len(col.all()) == 1 }, 20*time.Second, time.Millisecond,
		"the restarted exclusive source takes its lease again and runs")
}

// TestExclusiveRunPanicReleasesTheLease: likewise for a Run that panics:
// the supervisor recovers the panic and restarts the source, which must
// find its lease released.
func TestExclusiveRunPanicReleasesTheLease(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	inner := &funcSource{name: "mailbox", run: func(ctx context.Context, emit source.Emitter) error {
		if runs.Add(1) == 1 {
			panic("bad mail")
		}
		if err := emit.Emit(ctx, &task.Task{Kind: "k"}); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	}}
	src := source.Exclusive(inner, lease.NewLocal("source/mailbox", "this-host"))
	cfg := source.Config{RestartInitial: 10 * time.Millisecond, RestartMax: 20 * time.Millisecond, RestartJitter: -1}
	col := &collector{}
	s, err := source.NewSupervisor(cfg, col, nil, nil, src)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	defer stopSupervisor(t, s)

	require.Eventually(t, func() bool { return len(col.all()) == 1 }, 20*time.Second, time.Millisecond,
		"the restarted exclusive source takes its lease again and runs")
	require.Contains(t, s.Stats()[0].LastError, "bad mail")
}
