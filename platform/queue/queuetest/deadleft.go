package queuetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
)

// testDeadActionsReportEachLeft: Redrive and Purge report each dead
// letter they left for a reason of their own with a queue.DeadLetterError
// of its id (Features.LeaveDead makes the backend leave some), and do the
// others; a backend that leaves none answers no error.
func testDeadActionsReportEachLeft(t *testing.T, s *suite) {
	ids := s.enqueueDead(6)
	left := func(redrive bool, these ...string) []string {
		if s.f.LeaveDead == nil {
			return nil
		}
		for _, id := range these {
			s.f.LeaveDead(t, s.b, s.q, id, redrive)
		}
		return these
	}

	redriveLeft := left(true, ids[0], ids[2])
	n, err := s.b.Redrive(s.ctx, s.q, ids[:3]...)
	require.Equal(t, 3-len(redriveLeft), n, "the others re-driven: %v", err)
	requireLeft(t, err, redriveLeft, "Redrive")

	purgeLeft := left(false, ids[3], ids[5])
	n, err = s.b.Purge(s.ctx, s.q, ids[3:]...)
	require.Equal(t, 3-len(purgeLeft), n, "the others purged: %v", err)
	requireLeft(t, err, purgeLeft, "Purge")

	dead, err := s.b.ListDead(s.ctx, s.q, 0)
	require.NoError(t, err)
	require.ElementsMatch(t, append(slices.Clone(redriveLeft), purgeLeft...), deadIDs(dead), "the dead letters left, and only they")
}

// requireLeft checks that err, what a Redrive or Purge (op) answered
// that did not stop, reports the dead letters of want, each with a
// queue.DeadLetterError of its own id among the errors err joins, and
// nothing else.
func requireLeft(t *testing.T, err error, want []string, op string) {
	t.Helper()
	if len(want) == 0 {
		require.NoError(t, err, op)
		return
	}
	require.Error(t, err, "%s left dead letters and said nothing", op)
	parts := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts = j.Unwrap()
	}
	var got []string
	for _, p := range parts {
		var dl *queue.DeadLetterError
		require.True(t, errors.As(p, &dl), "%s: each part of its error reports a dead letter it left (queue.DeadLetterError), not only in its text: %v", op, p)
		require.Error(t, dl.Err, "%s: the reason of %s", op, dl.ID)
		got = append(got, dl.ID)
	}
	require.ElementsMatch(t, want, got, "%s: each dead letter left reported once, with its own id: %v", op, err)
}

// enqueueDead stores n tasks, dead-letters them and returns their ids.
func (s *suite) enqueueDead(n int) []string {
	s.t.Helper()
	for i := range n {
		s.enqueue(s.newTask(fmt.Sprintf("dead%d", i)))
	}
	for _, d := range s.leaseN(n, longLease) {
		require.NoError(s.t, s.b.DeadLetter(s.ctx, d, "reason "+string(d.Task.Payload)))
	}
	dead, err := s.b.ListDead(s.ctx, s.q, 0)
	require.NoError(s.t, err)
	require.Len(s.t, dead, n)
	return deadIDs(dead)
}
