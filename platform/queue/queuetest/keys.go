package queuetest

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// The cases about keys: de-duplication, the marks of a dropped duplicate
// (finished, see held.go for held), and marks that come from outside.

func testDedupe(t *testing.T, s *suite) {
	key := "key-" + s.q
	a, b := s.newTask("first"), s.newTask("second")
	a.Key, b.Key = key, key
	c := s.newTask("other")
	c.Key = "other-" + s.q
	s.enqueue(a)
	s.enqueue(b, c)
	// Duplicates inside one batch.
	x, y := s.newTask("batch-first"), s.newTask("batch-second")
	x.Key, y.Key = "batch-"+s.q, "batch-"+s.q
	s.enqueue(x, y)
	// Same id, no key: the id is the key.
	p, q := s.newTask("id-first"), s.newTask("id-second")
	p.ID, q.ID = "id-"+s.q, "id-"+s.q
	s.enqueue(p)
	s.enqueue(q)

	ds := s.leaseN(4, longLease)
	got := make([]string, 0, 4)
	for _, d := range ds {
		got = append(got, string(d.Task.Payload))
	}
	slices.Sort(got)
	require.Equal(t, []string{"batch-first", "first", "id-first", "other"}, got)

	// A key whose task is in flight is still refused, and not marked
	// finished: its task has not finished yet.
	again := s.newTask("while-leased")
	again.Key = key
	s.enqueue(again)
	s.expectNone(s.f.Lease / 2)
	_, _, finished := task.Finished(again)
	require.False(t, finished, "a duplicate of a task in flight is not marked finished")

	for _, d := range ds {
		require.NoError(t, s.b.Ack(s.ctx, d))
	}
	if s.f.DedupWindow >= time.Second {
		late := s.newTask("after-ack")
		late.Key = key
		s.enqueue(late)
		s.expectNone(s.f.Lease / 2)
	}
}

// testDuplicateOfFinished: a duplicate of a task that was acked, or
// dead-lettered, is dropped and marked with that outcome (and the dead
// letter's reason), so that whoever emitted it again can tell its source.
func testDuplicateOfFinished(t *testing.T, s *suite) {
	done, dead := s.newTask("done"), s.newTask("dead")
	done.Key, dead.Key = "done-"+s.q, "dead-"+s.q
	s.enqueue(done, dead)
	for _, d := range s.leaseN(2, longLease) {
		if d.Task.Key == done.Key {
			require.NoError(t, s.b.Ack(s.ctx, d))
		} else {
			require.NoError(t, s.b.DeadLetter(s.ctx, d, "bad order 7"))
		}
	}
	again, againDead := s.newTask("done-again"), s.newTask("dead-again")
	again.Key, againDead.Key = done.Key, dead.Key
	s.enqueue(again, againDead)
	s.expectNone(s.f.Lease / 2)
	o, reason, ok := task.Finished(again)
	require.True(t, ok, "a duplicate of an acked task is marked finished")
	require.Equal(t, task.Succeeded, o)
	require.Empty(t, reason)
	o, reason, ok = task.Finished(againDead)
	require.True(t, ok, "a duplicate of a dead letter is marked finished")
	require.Equal(t, task.DeadLettered, o)
	require.Equal(t, "bad order 7", reason)
}

// testDuplicateOfRedriven: a dead letter that is re-driven is queued
// again, no longer finished, so a duplicate of it is dropped without a
// finished mark (its emitter would otherwise tell its source the dead
// letter while the re-driven task runs, and may then succeed); once the
// re-driven task finished, a duplicate is marked with that new outcome.
func testDuplicateOfRedriven(t *testing.T, s *suite) {
	tk := s.newTask("redriven")
	tk.Key = "redriven-" + s.q
	s.enqueue(tk)
	d := s.leaseN(1, longLease)[0]
	require.NoError(t, s.b.DeadLetter(s.ctx, d, "bad order 8"))
	n, err := s.b.Redrive(s.ctx, s.q, tk.ID)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	again := s.newTask("redriven-again")
	again.Key = tk.Key
	s.enqueue(again)
	o, reason, ok := task.Finished(again)
	require.False(t, ok, "a duplicate of a re-driven task that is queued again is not finished (marked %q, %q)", o, reason)
	_, held := task.Held(again)
	require.True(t, held, "a duplicate of a re-driven task that is queued again is held by it")

	d = s.leaseN(1, longLease)[0]
	require.Equal(t, tk.ID, d.Task.ID, "the re-driven task, not the duplicate, is delivered")
	require.NoError(t, s.b.Ack(s.ctx, d))
	s.expectNone(s.f.Lease / 2)

	late := s.newTask("redriven-late")
	late.Key = tk.Key
	require.Eventually(t, func() bool {
		late.Headers = nil
		require.NoError(t, s.b.Enqueue(s.ctx, late))
		o, _, ok := task.Finished(late)
		return ok && o == task.Succeeded
	}, s.f.Slack, 20*time.Millisecond, "a duplicate of the re-driven task that succeeded is marked succeeded")
	s.expectNone(s.f.Lease / 2)
}

// testForgedFinishedMark: a task that arrives carrying the mark of a
// dropped duplicate (task.HeaderFinished, headers copied from outside) is
// stored like any other, is not marked finished once enqueued, and its
// deliveries do not carry the mark: its source would otherwise be told it
// finished before it ran.
func testForgedFinishedMark(t *testing.T, s *suite) {
	forged := s.newTask("forged")
	forged.SetHeader(task.HeaderFinished, string(task.Succeeded))
	forged.SetHeader(task.HeaderFinishedReason, "forged")
	forged.SetHeader("x-app", "kept")
	s.enqueue(forged)
	_, _, ok := task.Finished(forged)
	require.False(t, ok, "a task the backend stored is not marked finished")
	d := s.leaseN(1, longLease)[0]
	require.Equal(t, "forged", string(d.Task.Payload))
	_, _, ok = task.Finished(d.Task)
	require.False(t, ok, "its delivery carries no mark")
	require.Empty(t, d.Task.Header(task.HeaderFinishedReason))
	require.Equal(t, "kept", d.Task.Header("x-app"))
	require.NoError(t, s.b.Ack(s.ctx, d))
}
