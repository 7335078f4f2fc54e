package source

import (
	"errors"
	"slices"

	"github.com/plba/plba/platform/queue/jetstream"
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
// confirms it: the batch was accepted, or the error is a JetStream
// EnqueueError, which names the tasks whose storing the server did not
// confirm (refused, or their outcome unknown: queue.ErrOutcomeUnknown),
// the others of the batch being stored or dropped. Any other error says
// the batch was not stored. The duplicates are counted by their marks,
// which a backend sets only on the tasks it dropped (the emitter removes
// any a task came with before the Enqueue).
func countEmit(tasks []*task.Task, err error) emitCount {
	var unconfirmed map[string]struct{}
	storedKnown := err == nil
	var ee *jetstream.EnqueueError
	if err != nil && errors.As(err, &ee) {
		storedKnown = true
		unconfirmed = make(map[string]struct{}, len(ee.Failed))
		for _, f := range ee.Failed {
			unconfirmed[f.ID] = struct{}{}
		}
	}
	var c emitCount
	var seen map[*task.Task]struct{} // for batches too long to scan
	if len(tasks) > 16 {
		seen = make(map[*task.Task]struct{}, len(tasks))
	}
	for i, t := range tasks {
		if t == nil {
			continue
		}
		if seen != nil {
			if _, ok := seen[t]; ok {
				continue
			}
			seen[t] = struct{}{}
		} else if slices.Contains(tasks[:i], t) {
			continue
		}
		switch {
		case task.Dropped(t):
			c.dropped++
		case !storedKnown || task.StoredAgain(t):
		default:
			if _, ok := unconfirmed[t.ID]; !ok {
				c.stored++
			}
		}
	}
	return c
}

// unsettled returns the tasks of an Enqueue that returned err which it
// neither stored nor dropped, as far as its result tells (see countEmit):
// those a JetStream EnqueueError names, else every task not dropped.
func unsettled(tasks []*task.Task, err error) []*task.Task {
	var failed map[string]struct{}
	var ee *jetstream.EnqueueError
	if errors.As(err, &ee) {
		failed = make(map[string]struct{}, len(ee.Failed))
		for _, f := range ee.Failed {
			failed[f.ID] = struct{}{}
		}
	}
	var out []*task.Task
	for _, t := range tasks {
		if t == nil || task.Dropped(t) {
			continue
		}
		if failed != nil {
			if _, ok := failed[t.ID]; !ok {
				continue
			}
		}
		out = append(out, t)
	}
	return out
}
