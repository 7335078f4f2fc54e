package source_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/source"
)

// exclusiveTicker is a ticker that must run on one host at a time.
type exclusiveTicker struct{ ticker }

func (*exclusiveTicker) Exclusive() bool { return true }

// TestPauseTellsAnExclusivePauser: a source that is a Pauser is told of
// Pause and Resume also when it runs exclusive (the runtime wraps it in
// Exclusive, see Prepare): the wrapper passes them on, as it passes on
// Complete. It used to hide them: the source went on fetching while
// paused.
func TestPauseTellsAnExclusivePauser(t *testing.T) {
	t.Parallel()
	inner := &exclusiveTicker{}
	srcs := source.Prepare(&lease.Locals{}, nil, []source.Source{inner})
	sup, err := source.NewSupervisor(source.Config{}, &countingEnqueuer{}, nil, nil, srcs...)
	require.NoError(t, err)
	require.NoError(t, sup.Start(context.Background()))
	defer stopSupervisor(t, sup)
	require.Eventually(t, func() bool { return !sup.Stats()[0].LastEmit.IsZero() }, 10*time.Second, time.Millisecond)

	require.NoError(t, sup.Pause("ticker"))
	require.EqualValues(t, 1, inner.paused.Load(), "an exclusive Pauser is told of the pause")
	require.NoError(t, sup.Resume("ticker"))
	require.EqualValues(t, 1, inner.resumed.Load(), "an exclusive Pauser is told of the resume")
}
