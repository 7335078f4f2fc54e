package queuetest

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// The cases about dead letters: listed, re-driven, purged, gone from the
// queue, and made by the backend itself after max deliveries.

func testDeadLetter(t *testing.T, s *suite) {
	start := time.Now()
	tasks := []*task.Task{s.newTask("d0"), s.newTask("d1"), s.newTask("d2")}
	for i, tk := range tasks {
		tk.SetHeader("x-n", fmt.Sprint(i))
	}
	s.enqueue(tasks...)
	ds := s.leaseN(3, longLease)
	slices.SortFunc(ds, func(a, b *queue.Delivery) int { return bytes.Compare(a.Task.Payload, b.Task.Payload) })
	for _, d := range ds {
		require.NoError(t, s.b.DeadLetter(s.ctx, d, "reason "+string(d.Task.Payload)))
		time.Sleep(2 * time.Millisecond) // distinct timestamps for "oldest first"
	}
	s.requireLost(ds[0])

	dead, err := s.b.ListDead(s.ctx, s.q, 0)
	require.NoError(t, err)
	require.Len(t, dead, 3)
	for i, dl := range dead {
		require.Equal(t, ds[i].Task.ID, dl.Task.ID, "oldest first")
		require.Equal(t, fmt.Sprintf("reason d%d", i), dl.Reason)
		require.Equal(t, fmt.Sprintf("d%d", i), string(dl.Task.Payload))
		require.Equal(t, fmt.Sprint(i), dl.Task.Header("x-n"))
		require.Equal(t, "queuetest.kind", dl.Task.Kind)
		require.False(t, dl.At.Before(start.Add(-earlyTolerance)), "At %s is before the case started", dl.At)
		require.False(t, dl.At.After(time.Now().Add(earlyTolerance)), "At %s is in the future", dl.At)
	}
	limited, err := s.b.ListDead(s.ctx, s.q, 2)
	require.NoError(t, err)
	require.Len(t, limited, 2)
	require.Equal(t, dead[0].Task.ID, limited[0].Task.ID)
	require.Equal(t, dead[1].Task.ID, limited[1].Task.ID)

	// Redrive one: delivered again with a fresh attempt count.
	n, err := s.b.Redrive(s.ctx, s.q, ds[1].Task.ID)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	d := s.leaseOne(s.f.Lease, s.f.Slack)
	require.Equal(t, ds[1].Task.ID, d.Task.ID)
	require.Equal(t, 1, d.Task.Attempt, "redriven tasks start with fresh attempts")
	require.Equal(t, "d1", string(d.Task.Payload))
	require.Equal(t, "1", d.Task.Header("x-n"))
	require.NoError(t, s.b.Ack(s.ctx, d))

	// Purge one by id.
	n, err = s.b.Purge(s.ctx, s.q, ds[0].Task.ID)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	dead, err = s.b.ListDead(s.ctx, s.q, 0)
	require.NoError(t, err)
	require.Equal(t, []string{ds[2].Task.ID}, deadIDs(dead))

	// Unknown ids move nothing.
	n, err = s.b.Redrive(s.ctx, s.q, "no-such-task")
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = s.b.Purge(s.ctx, s.q, "no-such-task")
	require.NoError(t, err)
	require.Zero(t, n)

	// Redrive all, dead-letter again, purge all.
	n, err = s.b.Redrive(s.ctx, s.q)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	d = s.leaseOne(s.f.Lease, s.f.Slack)
	require.Equal(t, ds[2].Task.ID, d.Task.ID)
	require.Equal(t, 1, d.Task.Attempt)
	require.NoError(t, s.b.DeadLetter(s.ctx, d, "again"))
	dead, err = s.b.ListDead(s.ctx, s.q, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "again", dead[0].Reason)
	n, err = s.b.Purge(s.ctx, s.q)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	dead, err = s.b.ListDead(s.ctx, s.q, 0)
	require.NoError(t, err)
	require.Empty(t, dead)
	s.expectNone(s.f.Lease / 2)
}

// testDeadLetterRemoves: a dead-lettered task is not delivered again,
// not even after its lease would have ended: a handler would run it once
// more, and its source would hear of it again after its dead letter.
func testDeadLetterRemoves(t *testing.T, s *suite) {
	tk := s.newTask("dead")
	s.enqueue(tk)
	d := s.leaseOne(s.f.Lease, s.f.Slack)
	require.NoError(t, s.b.DeadLetter(s.ctx, d, "bad order 9"))
	s.requireLost(d)
	s.expectNone(2 * s.f.Lease)
	dead, err := s.b.ListDead(s.ctx, s.q, 0)
	require.NoError(t, err)
	require.Equal(t, []string{tk.ID}, deadIDs(dead))
}

func testMaxDeliveries(t *testing.T, s *suite) {
	tk := s.newTask("poison")
	s.enqueue(tk)
	for i := 1; i <= s.f.MaxDeliveries; i++ {
		d := s.leaseOne(s.f.Lease, s.f.Lease+s.f.Slack)
		require.Equal(t, tk.ID, d.Task.ID)
		require.Equal(t, i, d.Task.Attempt)
		// Never settled: the lease expires.
	}
	deadline := time.Now().Add(s.f.Lease + s.f.Slack)
	for {
		dead, err := s.b.ListDead(s.ctx, s.q, 0)
		require.NoError(t, err)
		if len(dead) == 1 {
			require.Equal(t, tk.ID, dead[0].Task.ID)
			require.NotEmpty(t, dead[0].Reason)
			break
		}
		require.Empty(t, dead)
		require.True(t, time.Now().Before(deadline), "task not dead-lettered after %d expired leases", s.f.MaxDeliveries)
		time.Sleep(20 * time.Millisecond)
	}
	s.expectNone(s.f.Lease)
}

func deadIDs(dead []queue.DeadLetter) []string {
	out := make([]string, len(dead))
	for i, d := range dead {
		out[i] = d.Task.ID
	}
	return out
}
