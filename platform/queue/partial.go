package queue

import (
	"errors"
	"slices"

	"github.com/plba/plba/platform/task"
)

// PartialEnqueueError is implemented by an error of Enqueue that tells,
// task by task, which tasks of its batch the backend did not confirm
// stored (the JetStream backend's EnqueueError): refused, or their
// outcome unknown (ErrOutcomeUnknown). Every other task of that batch
// was stored, or dropped as a duplicate (task.Dropped). An Enqueue error
// that implements none tells nothing of what was stored: its batch
// counts as not stored.
type PartialEnqueueError interface {
	error
	// NotStored reports whether t is one of the tasks whose storing the
	// backend did not confirm.
	NotStored(t *task.Task) bool
}

// EachOnce calls fn for every task of a batch once: the very Task twice in
// a batch is stored once (Producer), and nil tasks are left out.
func EachOnce(tasks []*task.Task, fn func(t *task.Task)) {
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
		fn(t)
	}
}

// Stored reports whether t, a task of a batch whose Enqueue returned err,
// was stored by that Enqueue: confirmed (err nil, or a
// PartialEnqueueError that does not name t), neither dropped as a
// duplicate (task.Dropped) nor stored already (task.StoredAgain). pe is
// err as a PartialEnqueueError, nil when it is none (PartialOf).
func Stored(t *task.Task, err error, pe PartialEnqueueError) bool {
	if task.Dropped(t) || task.StoredAgain(t) {
		return false
	}
	if err == nil {
		return true
	}
	return pe != nil && !pe.NotStored(t)
}

// PartialOf returns err as a PartialEnqueueError, or nil. A nil err costs
// nothing (the variable errors.As needs is made only for an error).
func PartialOf(err error) PartialEnqueueError {
	if err == nil {
		return nil
	}
	var pe PartialEnqueueError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}
