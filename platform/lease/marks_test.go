package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/source"
)

var _ source.Marks = (*lease.Marks)(nil)

func openMarks(t *testing.T, url, bucket string) *lease.Marks {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	m, err := lease.OpenMarks(context.Background(), js, bucket, 1)
	require.NoError(t, err)
	return m
}

// Marks are shared by the hosts, survive a reconnect and only move
// forward.
func TestMarksAreSharedAndMoveForward(t *testing.T) {
	url := natsURL(t)
	bucket := uniqueBucket(t)
	ctx := context.Background()
	a, b := openMarks(t, url, bucket), openMarks(t, url, bucket)

	last, err := a.LastRun(ctx, "nightly report")
	require.NoError(t, err)
	require.True(t, last.IsZero(), "no mark yet")

	ten := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	require.NoError(t, a.SetLastRun(ctx, "nightly report", ten))
	require.NoError(t, b.SetLastRun(ctx, "nightly report", ten.Add(-time.Hour)), "an older due time")
	for _, m := range []*lease.Marks{a, b, openMarks(t, url, bucket)} {
		last, err := m.LastRun(ctx, "nightly report")
		require.NoError(t, err)
		require.True(t, ten.Equal(last), "got %v", last)
	}
	require.NoError(t, b.SetLastRun(ctx, "nightly report", ten.Add(time.Hour)))
	last, err = a.LastRun(ctx, "nightly report")
	require.NoError(t, err)
	require.True(t, ten.Add(time.Hour).Equal(last))
}

// TestMarksBucketLostIsSetUpAgain: the server loses the marks' bucket
// (restarted without its store, or deleted). The marks are gone with it:
// LastRun reports none, and SetLastRun records again, instead of every
// read failing (and every run of the schedules with it) until the hosts
// restart.
func TestMarksBucketLostIsSetUpAgain(t *testing.T) {
	url := natsURL(t)
	bucket := uniqueBucket(t)
	ctx := context.Background()
	a, b := openMarks(t, url, bucket), openMarks(t, url, bucket)
	ten := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	require.NoError(t, a.SetLastRun(ctx, "nightly report", ten))

	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, js.DeleteKeyValue(ctx, bucket))
	requireMarkGone(t, a)
	require.NoError(t, b.SetLastRun(ctx, "nightly report", ten.Add(time.Hour)))
	last, err := a.LastRun(ctx, "nightly report")
	require.NoError(t, err)
	require.True(t, ten.Add(time.Hour).Equal(last), "got %v", last)

	// Lost again, and written first: the write sets the bucket up again.
	// (Right after this second deletion a read was seen to find the lost
	// mark again, about once in twenty runs on the embedded server, so the
	// mark written is a later one than the mark lost.)
	require.NoError(t, js.DeleteKeyValue(ctx, bucket))
	require.NoError(t, b.SetLastRun(ctx, "nightly report", ten.Add(2*time.Hour)), "the bucket is set up again")
	last, err = a.LastRun(ctx, "nightly report")
	require.NoError(t, err)
	require.True(t, ten.Add(2*time.Hour).Equal(last), "got %v", last)
}

// requireMarkGone waits until m reads no mark: its bucket was deleted
// and is set up again by the read.
func requireMarkGone(t *testing.T, m *lease.Marks) {
	t.Helper()
	require.Eventually(t, func() bool {
		last, err := m.LastRun(context.Background(), "nightly report")
		return err == nil && last.IsZero()
	}, 30*time.Second, 10*time.Millisecond, "the bucket is set up again, without the marks it lost")
}
