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

	last, err := a.LastRun(ctx, "nightly report")
	require.NoError(t, err, "the bucket is set up again")
	require.True(t, last.IsZero(), "the mark went with the bucket: got %v", last)
	require.NoError(t, b.SetLastRun(ctx, "nightly report", ten.Add(time.Hour)))
	last, err = a.LastRun(ctx, "nightly report")
	require.NoError(t, err)
	require.True(t, ten.Add(time.Hour).Equal(last), "got %v", last)

	require.NoError(t, js.DeleteKeyValue(ctx, bucket))
	require.NoError(t, b.SetLastRun(ctx, "nightly report", ten), "the bucket is set up again")
	last, err = a.LastRun(ctx, "nightly report")
	require.NoError(t, err)
	require.True(t, ten.Equal(last), "got %v", last)
}
