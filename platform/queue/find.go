package queue

import (
	"context"
	"errors"
	"time"

	"github.com/plba/plba/platform/task"
)

// TaskState is where a backend found a task.
type TaskState string

// The states of a found task.
const (
	// StateReady: stored, waiting to be delivered.
	StateReady TaskState = "ready"
	// StateDelayed: stored, not deliverable before DueAt (its NotBefore,
	// or a retry's back-off).
	StateDelayed TaskState = "delayed"
	// StateInFlight: delivered and not settled yet (running, or, on a
	// backend that cannot tell the two apart, waiting for a retry's
	// redelivery).
	StateInFlight TaskState = "in_flight"
	// StateSucceeded: finished successfully. Only the key's de-duplication
	// marker remains (the task itself is gone), within the backend's
	// de-duplication window.
	StateSucceeded TaskState = "succeeded"
	// StateDead: a dead letter (Reason, At), or, as a key's marker only,
	// a task that was dead-lettered and since re-driven or purged.
	StateDead TaskState = "dead"
)

// ErrBadLookup is returned by FindTasks for a lookup that names neither
// an id nor a key, or both.
var ErrBadLookup = errors.New("queue: look a task up by id or by key (exactly one)")

// TaskLookup names the task to find: by ID, or by Key (every task with
// it). Exactly one is set.
type TaskLookup struct {
	ID  string
	Key string
}

// Check returns ErrBadLookup unless exactly one of ID and Key is set.
func (l TaskLookup) Check() error {
	if (l.ID == "") == (l.Key == "") {
		return ErrBadLookup
	}
	return nil
}

// FoundTask is one task a lookup found.
type FoundTask struct {
	// State is where it was found.
	State TaskState `json:"state"`
	// Task is the task without its payload; only its Key (and Queue) is
	// known when all that is left of it is a de-duplication marker.
	Task *task.Task `json:"task"`
	// PayloadSize is the payload's size in bytes, when known.
	PayloadSize int `json:"payload_size,omitempty"`
	// Attempts counts the deliveries so far, when the backend keeps it.
	Attempts int `json:"attempts,omitempty"`
	// DueAt is when a delayed task becomes deliverable, or when an in
	// flight task's lease ends.
	DueAt time.Time `json:"due_at,omitzero"`
	// Reason and At are a dead letter's reason and time (At is zero for a
	// key's marker).
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// TaskSearch is the answer of a lookup: what was found and where the
// backend looked, so that "not found" says how far the search went.
type TaskSearch struct {
	// Found are the tasks found, ready and in flight first, dead and
	// finished last.
	Found []FoundTask `json:"found"`
	// Searched names the places looked in ("ready tasks", "dead
	// letters", ...).
	Searched []string `json:"searched"`
	// NotSearched names what the backend could not look at for this
	// lookup, and why.
	NotSearched []string `json:"not_searched,omitempty"`
}

// TaskFinder is an optional interface of a Backend that finds tasks of a
// queue by id or by key wherever it keeps them: waiting, delayed, in
// flight, finished (as far as its de-duplication markers remember) and
// dead-lettered. A backend without it is searched through DeadLetters
// only (FindTasks).
type TaskFinder interface {
	FindTasks(ctx context.Context, queue string, l TaskLookup) (TaskSearch, error)
}

// FindTasks looks tasks up on b: through its TaskFinder when it has one,
// otherwise among its dead letters (saying so in NotSearched). A lookup
// that finds nothing is not an error.
func FindTasks(ctx context.Context, b DeadLetters, queue string, l TaskLookup) (TaskSearch, error) {
	if err := l.Check(); err != nil {
		return TaskSearch{}, err
	}
	if f, ok := b.(TaskFinder); ok {
		return f.FindTasks(ctx, queue, l)
	}
	s := TaskSearch{Found: []FoundTask{}, Searched: []string{"dead letters"},
		NotSearched: []string{"tasks waiting, delayed, in flight or finished: the backend cannot look them up"}}
	q := DeadQuery{Key: l.Key, Limit: MaxDeadLimit}
	if l.ID != "" {
		q.IDs = []string{l.ID}
	}
	for {
		page, err := b.QueryDead(ctx, queue, q)
		if err != nil {
			return s, err
		}
		for _, d := range page.Items {
			s.Found = append(s.Found, FoundDead(d))
		}
		if page.Next == "" {
			return s, nil
		}
		q.Cursor = page.Next
	}
}

// FoundDead is the FoundTask of dead letter d (listed without payload).
func FoundDead(d DeadLetter) FoundTask {
	f := FoundTask{State: StateDead, Task: d.Task, PayloadSize: d.PayloadSize, Reason: d.Reason, At: d.At}
	if d.Task != nil {
		f.Attempts = d.Task.Attempt
	}
	return f
}
