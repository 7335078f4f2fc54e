package source

import (
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// emitCount is what one Enqueue of an Emit did, as far as its result
// tells: the tasks the backend stored, and the duplicates it dropped
// (task.Dropped: held by a live task with their key, or finished).
type emitCount struct {
	stored, dropped int
}

// countEmit reads what the Enqueue of tasks that returned err did (see
// queue.Producer). The very Task twice in a batch counts once; a task the
// backend stores already (task.StoredAgain) is neither stored by this
// Enqueue nor a duplicate. A task is counted stored only when the result
// confirms it (queue.Stored): the batch was accepted, or the error is a
// queue.PartialEnqueueError (JetStream's EnqueueError) that does not name
// it. Any other error says the batch was not stored. The duplicates are
// counted by their marks, which a backend sets only on the tasks it
// dropped (the emitter removes any a task came with before the Enqueue).
// A task of unknown, an Enqueue of the same Emit cut by a pause whose
// outcome was unknown, that this Enqueue finds stored already was stored
// by that cut Enqueue, which did not count it: it counts stored here.
func countEmit(tasks []*task.Task, err error, unknown map[*task.Task]struct{}) emitCount {
	pe := queue.PartialOf(err)
	var c emitCount
	queue.EachOnce(tasks, func(t *task.Task) {
		_, cut := unknown[t]
		switch {
		case task.Dropped(t):
			c.dropped++
		case queue.Stored(t, err, pe), cut && task.StoredAgain(t):
			c.stored++
		}
	})
	return c
}

// unsettled returns the tasks of an Enqueue that returned err which it
// neither stored nor dropped, as far as its result tells (see countEmit):
// those a queue.PartialEnqueueError names, else every task not dropped.
func unsettled(tasks []*task.Task, err error) []*task.Task {
	pe := queue.PartialOf(err)
	var out []*task.Task
	for _, t := range tasks {
		if t == nil || task.Dropped(t) {
			continue
		}
		if pe != nil && !pe.NotStored(t) {
			continue
		}
		out = append(out, t)
	}
	return out
}
