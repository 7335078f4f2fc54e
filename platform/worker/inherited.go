package worker

import (
	"context"

	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// withoutInherited returns the tasks to hand to the backend: tasks itself
// when each task.HeaderCompletion it carries was set by the source's
// emitter making this Enqueue (source.Emitting), else a batch in which
// each task carrying another is replaced by a copy without it (the very
// Task twice, by one copy). Such a header was inherited: a handler's
// follow-up made from its task by task.Clone names the source of that
// task, which would be told the follow-up's outcome too, a second
// outcome for what it sees as one item. The caller's task is left as it
// is: it may be the task being handled, whose header its own outcome
// needs (its headers shared with the backend's copy).
func withoutInherited(ctx context.Context, tasks []*task.Task) []*task.Task {
	emitting, _ := source.Emitting(ctx)
	var sent []*task.Task
	var copies map[*task.Task]*task.Task
	for i, t := range tasks {
		if name := t.Header(task.HeaderCompletion); name == "" || name == emitting {
			continue
		}
		if sent == nil {
			sent = append([]*task.Task(nil), tasks...)
			copies = make(map[*task.Task]*task.Task, 1)
		}
		c, ok := copies[t]
		if !ok {
			c = t.Clone()
			delete(c.Headers, task.HeaderCompletion)
			copies[t] = c
		}
		sent[i] = c
	}
	if sent == nil {
		return tasks
	}
	return sent
}

// markAsSent gives each task of tasks that withoutInherited replaced in
// sent the marks its copy got from the backend (task.Held,
// task.Finished, task.StoredAgain), so that the caller reads what its
// Enqueue did from its own tasks, as queue.Producer says.
func markAsSent(tasks, sent []*task.Task) {
	for i, t := range tasks {
		c := sent[i]
		if c == t {
			continue
		}
		if o, reason, ok := task.Finished(c); ok {
			task.MarkFinished(t, o, reason)
		}
		if by, ok := task.Held(c); ok {
			task.MarkHeld(t, by)
		}
		if task.StoredAgain(c) {
			task.MarkStoredAgain(t)
		}
	}
}
