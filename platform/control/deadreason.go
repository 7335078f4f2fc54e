package control

import (
	"errors"

	"github.com/plba/plba/platform/queue"
)

// reasons returns the reason of each id that a dead-letter action left a
// dead letter, from err, what the backend answered: the part of err (the
// errors it joins, or err itself) that is or wraps the
// queue.DeadLetterError with the id, found by errors.As, never by the
// text; else why the backend stopped (the last part that is none), as the
// backend did not reach the id or stopped at it; else that it is still a
// dead letter. Each id so gets its own reason, never another dead
// letter's, and the answer grows with the ids, not their square.
func reasons(err error) func(id string) string {
	const still = "still a dead letter after the action"
	if err == nil {
		return func(string) string { return still }
	}
	parts := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts = j.Unwrap()
	}
	own := make(map[string]string)
	other := still
	for _, p := range parts {
		if p == nil {
			continue
		}
		var dl *queue.DeadLetterError
		if !errors.As(p, &dl) {
			other = "not done, the action stopped: " + p.Error()
			continue
		}
		if _, dup := own[dl.ID]; !dup {
			own[dl.ID] = p.Error()
		}
	}
	return func(id string) string {
		if r, ok := own[id]; ok {
			return r
		}
		return other
	}
}
