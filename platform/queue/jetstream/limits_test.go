package jetstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
)

// A work stream at its max_msgs refuses new tasks instead of dropping the
// oldest: Enqueue blocks until there is room (or its context ends), and
// every queued task is still delivered.
func TestFullQueuePushesBack(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := embeddedConfig(t.TempDir())
	cfg.MaxMsgs = 2
	b := openBackend(t, cfg)
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "a", Kind: "k", Queue: "full"}, &task.Task{ID: "b", Kind: "k", Queue: "full"}))

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := b.Enqueue(short, &task.Task{ID: "c", Kind: "k", Queue: "full"})
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "a full queue blocks Enqueue until its context ends")
	st, err := b.Stats(ctx, "full")
	require.NoError(t, err)
	require.EqualValues(t, 2, st.Ready, "nothing queued was dropped: %+v", st)

	enqueued := make(chan error, 1)
	go func() { enqueued <- b.Enqueue(ctx, &task.Task{ID: "c", Kind: "k", Queue: "full"}) }()
	select {
	case err := <-enqueued:
		t.Fatalf("Enqueue returned while the queue was full: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	var got []string
	d := leaseOne(t, b, "full")
	got = append(got, d.Task.ID)
	require.NoError(t, b.Ack(ctx, d))
	select {
	case err := <-enqueued:
		require.NoError(t, err, "room again: the blocked Enqueue goes through")
	case <-time.After(20 * time.Second):
		t.Fatal("Enqueue still blocked after a task left the queue")
	}
	for range 2 {
		d := leaseOne(t, b, "full")
		got = append(got, d.Task.ID)
		require.NoError(t, b.Ack(ctx, d))
	}
	require.ElementsMatch(t, []string{"a", "b", "c"}, got)
}

// The dead-letter stream is bounded: past dead.max_msgs the oldest dead
// letters are discarded to make room for new ones, and every discard is
// counted, in Status and in the Stats of the queue whose dead letter it
// was (telemetry exports plba.queue.dead_discarded per queue from it).
func TestDeadLetterDiscardsAreCounted(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := embeddedConfig(t.TempDir())
	cfg.Dead.MaxMsgs = 2
	b := openBackend(t, cfg)
	deadLetter := func(q, id string) {
		t.Helper()
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: id, Kind: "k", Queue: q}))
		d := leaseOne(t, b, q)
		require.NoError(t, b.DeadLetter(ctx, d, "bad "+id))
	}
	discarded := func(q string) int64 {
		t.Helper()
		st, err := b.Stats(ctx, q)
		require.NoError(t, err)
		return st.DeadDiscarded
	}
	deadLetter("dl", "d1")
	deadLetter("other", "o1")
	deadLetter("dl", "d2") // discards d1
	dead, err := b.ListDead(ctx, "dl", 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "d2", dead[0].Task.ID)
	require.EqualValues(t, 1, b.Status().DeadDiscarded)
	require.EqualValues(t, 1, discarded("dl"), "d1 was discarded")
	require.EqualValues(t, 0, discarded("other"))

	deadLetter("dl", "d3") // discards o1
	require.EqualValues(t, 2, b.Status().DeadDiscarded)
	require.EqualValues(t, 1, discarded("dl"))
	require.EqualValues(t, 1, discarded("other"), "o1 was discarded")
	st, err := b.Stats(ctx, "other")
	require.NoError(t, err)
	require.EqualValues(t, 0, st.Dead)
}

func TestLimitsConfig(t *testing.T) {
	t.Parallel()
	c := jetstream.Config{}.WithDefaults()
	require.Equal(t, 30*24*time.Hour, c.Dead.MaxAge)
	require.EqualValues(t, 1<<30, c.Dead.MaxBytes)
	require.Equal(t, jetstream.DefaultConfig().Dead, c.Dead, "the declared defaults are the effective ones")
	for _, tc := range []struct {
		key string
		cfg jetstream.Config
	}{
		{"dead.max_age", jetstream.Config{Dead: jetstream.DeadConfig{MaxAge: time.Second}}},
		{"dead.max_bytes", jetstream.Config{Dead: jetstream.DeadConfig{MaxBytes: 10}}},
		{"dead.max_msgs", jetstream.Config{Dead: jetstream.DeadConfig{MaxMsgs: -2}}},
		{"max_msgs", jetstream.Config{MaxMsgs: -1}},
		{"max_bytes", jetstream.Config{MaxBytes: -1}},
	} {
		err := tc.cfg.Validate()
		require.ErrorIs(t, err, jetstream.ErrInvalidConfig, tc.key)
		require.ErrorContains(t, err, tc.key)
	}
}

// Bounds applied to a dead-letter stream that already holds more (an
// upgrade from unbounded dead letters, or lowered bounds) discard the
// oldest through the backend, counted, not silently by the server.
func TestLoweredDeadBoundsAreCounted(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := embeddedConfig(t.TempDir())
	b := openBackend(t, cfg)
	for _, id := range []string{"d1", "d2", "d3", "d4"} {
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: id, Kind: "k", Queue: "low"}))
		require.NoError(t, b.DeadLetter(ctx, leaseOne(t, b, "low"), "bad"))
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	require.NoError(t, b.Close(cctx))
	cancel()

	cfg.Dead.MaxMsgs = 2
	b = openBackend(t, cfg)
	require.EqualValues(t, 2, b.Status().DeadDiscarded)
	st, err := b.Stats(ctx, "low")
	require.NoError(t, err)
	require.EqualValues(t, 2, st.DeadDiscarded, "counted for the queue of the dead letters discarded")
	dead, err := b.ListDead(ctx, "low", 0)
	require.NoError(t, err)
	require.Len(t, dead, 2)
	require.Equal(t, "d3", dead[0].Task.ID)
}

// A task Enqueue publishes again because a full stream refused it is
// stored unmarked when room comes (the refused copy was not stored, and a
// copy of its own would not mark it held anyway), while a duplicate in
// the same batch is marked held by the task that holds its key.
func TestTaskRepublishedOnAFullStreamIsNotHeld(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := embeddedConfig(t.TempDir())
	cfg.MaxMsgs = 2
	b := openBackend(t, cfg)
	a, bt := &task.Task{ID: "a", Kind: "k", Queue: "full"}, &task.Task{ID: "b", Kind: "k", Queue: "full"}
	require.NoError(t, b.Enqueue(ctx, a, bt))

	c, dupA := &task.Task{ID: "c", Kind: "k", Queue: "full"}, &task.Task{Key: "a", Kind: "k", Queue: "full"}
	enqueued := make(chan error, 1)
	go func() { enqueued <- b.Enqueue(ctx, c, dupA) }()
	select {
	case err := <-enqueued:
		t.Fatalf("Enqueue returned while the queue was full: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	inFlight := leaseOne(t, b, "full")
	require.Equal(t, "a", inFlight.Task.ID)
	d := leaseOne(t, b, "full")
	require.Equal(t, "b", d.Task.ID)
	require.NoError(t, b.Ack(ctx, d))
	select {
	case err := <-enqueued:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Enqueue still blocked after a task left the queue")
	}
	_, held := task.Held(c)
	require.False(t, held, "c was stored by its republished message")
	by, held := task.Held(dupA)
	require.True(t, held, "a duplicate of the task in flight is held")
	require.Equal(t, "a", by)
	d = leaseOne(t, b, "full")
	require.Equal(t, "c", d.Task.ID)
	require.NoError(t, b.Ack(ctx, d))
	require.NoError(t, b.Ack(ctx, inFlight))
}
