package source

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// On JetStream (an embedded server): an emit whose answers were lost
// until the grace passed, while the server stored the task, is found by
// the due time's key in the work stream, and the due time reported run.
func TestScheduleFindsTheTaskOfAnEmitGivenUpOnJetStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	be, err := jetstream.Open(ctx, jetstream.Params{Config: jetstream.Config{Mode: jetstream.ModeEmbedded,
		AckWait: time.Minute, Embedded: embedded.Config{StoreDir: t.TempDir()}}})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = be.Close(ctx)
	})
	marks := &MemoryMarks{}
	require.NoError(t, marks.SetLastRun(ctx, "job", at("2026-12-04T10:00:00Z")))
	s, err := Every("job", time.Hour, "job.run", WithGrace(10*time.Second), WithMarks(marks))
	require.NoError(t, err)
	enq := &lostAnswers{be: be, stores: true, lose: true}
	c := newFakeClock(at("2026-12-04T10:30:00Z"))
	done, _ := startRun(t, s, c, NewEmitter(s, enq.finder()))
	require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
	c.set(at("2026-12-04T11:00:00Z"))
	next := retryUntilGivenUp(t, c, done, at("2026-12-04T11:00:10Z"))
	require.Equal(t, at("2026-12-04T12:00:00Z"), next, "Run goes on to the next due time")
	d := s.Details().(ScheduleDetails)
	require.Equal(t, at("2026-12-04T11:00:00Z"), d.Last)
	require.Zero(t, d.Unknown)
	require.Zero(t, d.Missed)
	require.Equal(t, at("2026-12-04T11:00:00Z"), markOf(t, marks))
	found, err := be.FindTasks(ctx, "q", queue.TaskLookup{Key: s.Key(at("2026-12-04T11:00:00Z"))})
	require.NoError(t, err)
	require.Len(t, found.Found, 1, "stored once")
	require.Equal(t, queue.StateReady, found.Found[0].State)
}
