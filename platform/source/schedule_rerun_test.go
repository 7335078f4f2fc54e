package source

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A schedule run again on the same host (its lease lost and taken back,
// or restarted by its supervisor) whose marks no longer know the due time
// it emitted (the server lost the marks' bucket with its store, or the
// mark's write failed) does not run that due time again: it is past the
// grace by then, and past the de-duplication window, so catching it up
// would run it twice. It writes that due time back to the marks, for a
// host that takes the schedule over.
func TestScheduleRunAgainDoesNotCatchUpADueTimeItEmitted(t *testing.T) {
	marks := &MemoryMarks{}
	s, err := Every("job", time.Hour, "job.run", OnMissed(CatchUpOnce), WithMarks(marks))
	require.NoError(t, err)
	require.NoError(t, marks.SetLastRun(context.Background(), "job", at("2026-12-04T09:00:00Z")))
	c := newFakeClock(at("2026-12-04T09:59:00Z"))
	s.clock = c
	b := newDedup()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, b) }()
	require.Equal(t, at("2026-12-04T10:00:00Z"), c.nextSleep(t))
	c.set(at("2026-12-04T10:00:00Z"))
	require.Equal(t, "job@2026-12-04T10:00:00Z", b.next(t))
	require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
	cancel() // the lease is lost
	require.NoError(t, <-done)

	// The marks' bucket is lost meanwhile: LastRun reports none.
	marks.mu.Lock()
	clear(marks.last)
	marks.mu.Unlock()
	c.set(at("2026-12-04T10:10:00Z"))

	b.mu.Lock()
	clear(b.keys) // the de-duplication window has passed
	b.mu.Unlock()
	runSchedule(t, s, c, b)
	require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
	require.Zero(t, len(b.emitted), "10:00 ran already on this host: it is not caught up again")
	require.Zero(t, s.Details().(ScheduleDetails).Missed)
	// And the marks know it again: a host that takes the schedule over
	// does not catch 10:00 up either.
	got, err := marks.LastRun(context.Background(), "job")
	require.NoError(t, err)
	require.Equal(t, at("2026-12-04T10:00:00Z"), got)
}
