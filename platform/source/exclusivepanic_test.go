package source_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/source"
)

// TestExclusiveRunGoexitReleasesTheLease: an exclusive source whose Run
// ends its goroutine with runtime.Goexit releases its lease on the way
// out, as when it returns: its restarted Run (or another host) takes the
// lease again. It used to keep the lease held for ever (a local one), so
// the restarted Run waited for it and never ran.
func TestExclusiveRunGoexitReleasesTheLease(t *testing.T) {
	t.Parallel()
	exclusiveRestarted(t, runtime.Goexit)
}

// TestExclusiveRunPanicReleasesTheLease: likewise for a Run that panics:
// the supervisor recovers the panic and restarts the source, which must
// find its lease released.
func TestExclusiveRunPanicReleasesTheLease(t *testing.T) {
	t.Parallel()
	s := exclusiveRestarted(t, func() { panic("bad mail") })
	require.Contains(t, s.Stats()[0].LastError, "bad mail")
}

// exclusiveRestarted supervises an exclusive source whose first Run ends
// with end, and waits for its restarted Run to take the lease again and
// emit.
func exclusiveRestarted(t *testing.T, end func()) *source.Supervisor {
	t.Helper()
	inner := &funcSource{name: "mailbox", run: endsFirstRun(end)}
	src := source.Exclusive(inner, lease.NewLocal("source/mailbox", "this-host"))
	cfg := source.Config{RestartInitial: 10 * time.Millisecond, RestartMax: 20 * time.Millisecond, RestartJitter: -1}
	col := &collector{}
	s, err := source.NewSupervisor(cfg, col, nil, nil, src)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { stopSupervisor(t, s) })
	require.Eventually(t, func() bool { return len(col.all()) == 1 }, 20*time.Second, time.Millisecond,
		"the restarted exclusive source takes its lease again and runs")
	return s
}
