package queuetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// requireHeldBy checks that t, a duplicate Enqueue dropped, is marked held
// by the task with id by, and not finished.
func requireHeldBy(t *testing.T, tk *task.Task, by, what string) {
	t.Helper()
	got, ok := task.Held(tk)
	require.True(t, ok, "a duplicate of a %s task is marked held", what)
	require.Equal(t, by, got, "a duplicate of a %s task names its holder", what)
	_, _, finished := task.Finished(tk)
	require.False(t, finished, "a duplicate of a %s task is not marked finished", what)
}

// requireUnmarked checks that tk carries neither mark of a dropped
// duplicate.
func requireUnmarked(t *testing.T, tk *task.Task, what string) {
	t.Helper()
	_, held := task.Held(tk)
	require.False(t, held, "%s is not marked held", what)
	_, _, finished := task.Finished(tk)
	require.False(t, finished, "%s is not marked finished", what)
}

// testDuplicateOfLive: a duplicate of a task that is stored and has not
// finished (ready, delayed, in flight or released; an earlier task of the
// same batch) is dropped and marked held by that task (task.Held). A task that
// is stored is never marked, nor is the same task enqueued again (the very
// Task, or a copy with its ID and key) marked held or finished: it is the
// holder, and is marked stored already (task.StoredAgain) unless its own
// batch stored it. A held mark that
// comes with a task is dropped, and a delivery never carries one.
func testDuplicateOfLive(t *testing.T, s *suite) {
	flight, released := s.newTask("in-flight"), s.newTask("released")
	flight.Key, released.Key = "flight-"+s.q, "released-"+s.q
	s.enqueue(flight, released)
	var leased *queue.Delivery
	for _, d := range s.leaseN(2, longLease) {
		if d.Task.ID == flight.ID {
			leased = d
		} else {
			require.NoError(t, s.b.Release(s.ctx, d))
		}
	}
	require.NotNil(t, leased)

	ready, delayed := s.newTask("ready"), s.newTask("delayed")
	ready.Key, delayed.Key = "ready-"+s.q, "delayed-"+s.q
	delayed.NotBefore = time.Now().Add(time.Hour)
	forged := s.newTask("forged")
	forged.SetHeader(task.HeaderHeld, "someone")
	s.enqueue(ready, delayed, forged)
	requireUnmarked(t, ready, "a stored ready task")
	requireUnmarked(t, delayed, "a stored delayed task")
	requireUnmarked(t, forged, "a stored task that came with a held mark")

	dupFlight, dupReady, dupDelayed := s.newTask("dup-flight"), s.newTask("dup-ready"), s.newTask("dup-delayed")
	dupFlight.Key, dupReady.Key, dupDelayed.Key = flight.Key, ready.Key, delayed.Key
	first, second := s.newTask("batch-first"), s.newTask("batch-second")
	first.Key, second.Key = "batch-"+s.q, "batch-"+s.q
	fresh, dupReleased := s.newTask("fresh"), s.newTask("dup-released")
	dupReleased.Key = released.Key
	s.enqueue(dupFlight, dupReady, first, dupDelayed, second, fresh, dupReleased)
	requireHeldBy(t, dupFlight, flight.ID, "in-flight")
	requireHeldBy(t, dupReady, ready.ID, "ready")
	requireHeldBy(t, dupDelayed, delayed.ID, "delayed")
	requireHeldBy(t, second, first.ID, "same batch's earlier")
	requireUnmarked(t, first, "the batch's stored task")
	requireUnmarked(t, fresh, "a stored new task")
	// A released task may be stored anew (a copy): the backend may not
	// know which task holds the key then, but it knows the key is held.
	if by, _ := task.Held(dupReleased); by == "" {
		requireHeldBy(t, dupReleased, "", "released")
	} else {
		requireHeldBy(t, dupReleased, released.ID, "released")
	}

	// The same task enqueued again, the very object or a copy with its ID
	// and key, is the task that holds the key: not held by another.
	// It stored nothing, and says so (task.StoredAgain).
	s.enqueue(ready)
	requireUnmarked(t, ready, "a stored task enqueued again")
	require.True(t, task.StoredAgain(ready), "a stored task enqueued again is marked stored already")
	copyOfFlight := flight.Clone()
	s.enqueue(copyOfFlight)
	requireUnmarked(t, copyOfFlight, "a copy of a task in flight")
	require.True(t, task.StoredAgain(copyOfFlight), "a copy of a task in flight is marked stored already")
	// The very Task twice in one batch is stored by it: not marked.
	twice := s.newTask("twice")
	s.enqueue(twice, twice)
	requireUnmarked(t, twice, "the very task twice in one batch")
	require.False(t, task.StoredAgain(twice), "the very task twice in one batch is stored by it")
	// A task that was marked held and is enqueued again while its key is
	// still held is marked again, by the same holder.
	s.enqueue(dupReady)
	requireHeldBy(t, dupReady, ready.ID, "ready")

	got := map[string]bool{}
	for _, d := range s.leaseN(6, longLease) {
		got[string(d.Task.Payload)] = true
		_, held := task.Held(d.Task)
		require.False(t, held, "delivery of %q carries no held mark", d.Task.Payload)
		require.NoError(t, s.b.Ack(s.ctx, d))
	}
	require.Equal(t, map[string]bool{"ready": true, "released": true, "forged": true, "batch-first": true, "fresh": true, "twice": true}, got)
	s.expectNone(s.f.Lease / 2)
	require.NoError(t, s.b.Ack(s.ctx, leased))
}

// testEnqueueAgainAfterDeadLetter: the very Task that was dead-lettered,
// enqueued again within the window, is dropped and marked finished with
// the dead letter's reason; the mark is the caller's: the kept dead
// letter does not carry it.
func testEnqueueAgainAfterDeadLetter(t *testing.T, s *suite) {
	tk := s.newTask("dead")
	tk.Key = "dead-" + s.q
	s.enqueue(tk)
	d := s.leaseN(1, longLease)[0]
	require.NoError(t, s.b.DeadLetter(s.ctx, d, "bad order 9"))

	s.enqueue(tk)
	o, reason, ok := task.Finished(tk)
	require.True(t, ok, "the dead-lettered task enqueued again is marked finished")
	require.Equal(t, task.DeadLettered, o)
	require.Equal(t, "bad order 9", reason)
	_, held := task.Held(tk)
	require.False(t, held)

	dl, err := s.b.GetDead(s.ctx, s.q, tk.ID)
	require.NoError(t, err)
	require.Empty(t, dl.Task.Header(task.HeaderFinished), "the dead letter carries no mark")
	require.Empty(t, dl.Task.Header(task.HeaderFinishedReason), "the dead letter carries no mark")
	s.expectNone(s.f.Lease / 2)
}
