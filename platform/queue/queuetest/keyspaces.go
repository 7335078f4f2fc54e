package queuetest

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// testKeySpaces: a key a producer gives is never a key task.Prepare
// generated, even written the same (task.Task.Key). Producers' keys
// written as the ids the next keyless tasks get (this process's prefix,
// the counters to come: whoever saw one id knows them), and ids given
// so, take none of those tasks' keys: every task is stored, unmarked, and
// worked once as itself (its id, key and payload). A producer's key
// written as a stored keyless task's id is stored beside it. Each space
// still de-duplicates within itself: the very Task, or a copy, enqueued
// again is stored already; another task with a producer's key (written
// as an id) is held by the first, and refused as finished after it
// finished within the window. A key is the producer's once an id was
// given after Prepare (a prepared task cloned as a template).
func testKeySpaces(t *testing.T, s *suite) {
	const ahead = 16
	var all []*task.Task // every task stored
	var crafted, keyless []*task.Task
	hit := false
	// Another test may take ids in between: then the keyless tasks get
	// later ones, and a round is tried again.
	for round := 0; round < 8 && !hit; round++ {
		base := task.NewID()
		n, err := strconv.ParseUint(base[16:], 16, 64)
		require.NoError(t, err)
		next := func(k int) string { return fmt.Sprintf("%s%016x", base[:16], n+uint64(k)) }
		taken := map[string]bool{}
		var cs []*task.Task
		for k := 1; k <= 2*ahead; k++ {
			c := s.newTask(fmt.Sprintf("crafted-%d-%d", round, k))
			if k <= ahead {
				// The id given (no id made for it), the key an id to come.
				c.ID, c.Key = fmt.Sprintf("crafted-%s-%d-%d", s.q, round, k), next(k)
			} else {
				c.ID = next(k) // an id to come given: the id is its key
			}
			taken[next(k)] = true
			cs = append(cs, c)
		}
		s.enqueue(cs...)
		ks := make([]*task.Task, 2*ahead)
		for i := range ks {
			ks[i] = s.newTask(fmt.Sprintf("keyless-%d-%d", round, i))
		}
		s.enqueue(ks...)
		for _, k := range ks {
			hit = hit || taken[k.Key]
		}
		crafted, keyless = append(crafted, cs...), append(keyless, ks...)
	}
	require.True(t, hit, "a keyless task got an id a producer's key was written as")
	for _, tk := range append(append([]*task.Task(nil), crafted...), keyless...) {
		requireUnmarked(t, tk, "task "+string(tk.Payload))
		require.False(t, task.StoredAgain(tk), "task %s is stored by its Enqueue", tk.Payload)
		all = append(all, tk)
	}

	// Each space de-duplicates within itself.
	s.enqueue(keyless[0], crafted[0], crafted[len(crafted)-1])
	for _, tk := range []*task.Task{keyless[0], crafted[0], crafted[len(crafted)-1]} {
		requireUnmarked(t, tk, "task "+string(tk.Payload)+" enqueued again")
		require.True(t, task.StoredAgain(tk), "task %s enqueued again is stored already", tk.Payload)
	}
	cp := keyless[1].Clone()
	s.enqueue(cp)
	require.True(t, task.StoredAgain(cp), "a copy of a keyless task is that task")
	other := s.newTask("other-with-crafted-key")
	other.Key = crafted[0].Key
	s.enqueue(other)
	requireHeldBy(t, other, crafted[0].ID, "crafted")

	// A producer's key written as a stored keyless task's id (one made
	// after the last id a key was written as).
	fresh := s.newTask("keyless-fresh")
	s.enqueue(fresh)
	all = append(all, fresh)
	mine := s.newTask("key-of-a-keyless-id")
	mine.Key = fresh.ID
	s.enqueue(mine)
	requireUnmarked(t, mine, "a producer's key written as a stored keyless task's id")
	require.False(t, task.StoredAgain(mine))
	all = append(all, mine)
	dupMine := s.newTask("dup-of-key-of-a-keyless-id")
	dupMine.Key = mine.Key
	s.enqueue(dupMine)
	requireHeldBy(t, dupMine, mine.ID, "producer-keyed")

	// A prepared task cloned, its id given and its key emptied (a
	// template): the id is the producer's key, which a task given that
	// id meets (the same id and key: that task, stored already).
	tmpl := s.newTask("template")
	tmpl.Prepare(time.Now())
	given := tmpl.Clone()
	given.ID, given.Key, given.Payload = "given-"+s.q, "", []byte("template-with-id")
	s.enqueue(given)
	requireUnmarked(t, given, "a template with an id given")
	all = append(all, given)
	sameID := s.newTask("same-id-as-template")
	sameID.ID = given.ID
	s.enqueue(sameID)
	requireUnmarked(t, sameID, "a task with the template's id")
	require.True(t, task.StoredAgain(sameID), "a task with the template's id and key is stored already")

	want := map[string]*task.Task{}
	for _, tk := range all {
		want[string(tk.Payload)] = tk
	}
	for _, d := range s.leaseN(len(all), longLease) {
		tk, ok := want[string(d.Task.Payload)]
		require.True(t, ok, "delivery of %q: one of the tasks, once", d.Task.Payload)
		delete(want, string(d.Task.Payload))
		require.Equal(t, tk.ID, d.Task.ID, "delivery of %q", d.Task.Payload)
		require.Equal(t, tk.Key, d.Task.Key, "delivery of %q", d.Task.Payload)
		require.NoError(t, s.b.Ack(s.ctx, d))
	}
	s.expectNone(s.f.Lease / 2)

	if s.f.DedupWindow >= time.Second {
		late := s.newTask("late-with-crafted-key")
		late.Key = crafted[0].Key
		s.enqueue(late)
		o, _, fin := task.Finished(late)
		require.True(t, fin, "a producer's key written as an id is remembered once its task finished")
		require.Equal(t, task.Succeeded, o)
		s.expectNone(s.f.Lease / 2)
	}
}
