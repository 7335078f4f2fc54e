package queue

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/plba/plba/platform/task"
)

// Sentinel errors a caller can branch on.
var (
	// ErrClosed is returned by every call after Close began (and by a
	// blocked Lease when Close begins).
	ErrClosed = errors.New("queue: backend closed")
	// ErrFull is returned by Enqueue when a bounded queue is full and the
	// backend is configured to fail fast instead of blocking.
	ErrFull = errors.New("queue: queue full")
	// ErrLeaseLost is returned when a delivery is settled or extended after
	// its lease expired (another consumer may have it now) or twice, or
	// when the backend delivered the task again while this delivery ran
	// and the other delivery was settled first (the task's outcome is
	// that one's).
	ErrLeaseLost = errors.New("queue: lease lost")
	// ErrInvalidTask is returned by Enqueue for a task without a kind or
	// queue.
	ErrInvalidTask = errors.New("queue: invalid task")
	// ErrTooLarge is returned by Enqueue for a task larger than the
	// backend can carry. Like ErrInvalidTask it is permanent: the same
	// task will never be accepted, so a source dead-letters it instead
	// (task.Rejected) rather than emitting it again.
	ErrTooLarge = errors.New("queue: task too large")
	// ErrDeadLettered is returned by Retry, and by Release, when the
	// backend settled the delivery as a dead letter instead (its own
	// delivery limit was reached: a retry is not allowed, or a release
	// on the last allowed delivery could not be made without counting
	// it). The settlement happened: the caller counts and reports a
	// dead letter, not a retry or a give-back.
	ErrDeadLettered = errors.New("queue: dead-lettered by the backend")
	// ErrNotFound is returned by GetDead for an id that is not (or no
	// longer) a dead letter of the queue.
	ErrNotFound = errors.New("queue: not found")
	// ErrBadCursor is returned by QueryDead for a cursor the backend did
	// not make.
	ErrBadCursor = errors.New("queue: bad cursor")
	// ErrOutcomeUnknown is wrapped by an error of Enqueue (and of an
	// OverrideStore's Save) when the request may have reached the server
	// but its answer did not come back (a publish whose ack timed out,
	// or whose connection was lost after sending): the task may or may
	// not be stored. Enqueueing it again with the same key is safe,
	// because plba de-duplicates tasks by key: a stored one is not stored
	// twice. Errors that say the task was not stored (a refusal, a task
	// never sent) do not wrap it.
	ErrOutcomeUnknown = errors.New("queue: outcome unknown (may or may not be stored)")
)

// Delivery is one leased task. Task.Attempt is the 1-based number of this
// delivery. Receipt is private to the backend that made the delivery.
type Delivery struct {
	Task *task.Task
	// LeaseUntil is when the lease ends unless extended. One with a
	// monotonic reading (made from time.Now in this process) is read on
	// the monotonic clock; one without, as a wall time, against the wall
	// clock.
	LeaseUntil time.Time
	// Receipt is the backend's handle for settling this delivery.
	Receipt any
	// Last is set by the consumer (the worker pool) before it settles a
	// delivery it ran as its task's last attempt. A backend that
	// remembers finished tasks by their keys (JetStream) then records
	// this one's success even when its key was generated: were the ack
	// lost (a process or server killed), the task would come back past
	// its last attempt and be dead-lettered although it succeeded.
	Last bool
	// FailReason is set by the consumer before it calls Retry: why the
	// attempt failed. A backend that dead-letters the task instead (its
	// own delivery limit, ErrDeadLettered) stores it in the dead letter's
	// reason.
	FailReason string
	// DeadReason is set by DeadLetter, and by a Retry or a Release that
	// dead-lettered the task (ErrDeadLettered), to the reason the task's dead letter
	// was stored with, when a backend may store another than the one
	// asked: JetStream keeps the reason of a copy stored before for the
	// same message (a dead letter whose termination was lost, or one made
	// from the server's max-deliveries advisory). The consumer tells the
	// task's source this reason, the one its dead letter shows. Empty
	// when the backend stored the reason asked.
	DeadReason string
}

// Stats are the counts of one queue at one moment.
type Stats struct {
	Queue    string `json:"queue"`
	Ready    int64  `json:"ready"`     // deliverable now
	Delayed  int64  `json:"delayed"`   // waiting for their not-before time
	InFlight int64  `json:"in_flight"` // leased, not yet settled
	Dead     int64  `json:"dead"`      // in the dead letter
	// DeadDiscarded counts the dead letters the backend discarded since it
	// started because its dead-letter bound was reached (memory:
	// Options.MaxDead; JetStream: Config.Dead MaxBytes and MaxMsgs, the
	// dead letters of the queue this process discarded, not the other
	// hosts'). Zero for a backend without a bound.
	DeadDiscarded int64 `json:"dead_discarded"`
	// FinishedKeysForgotten counts the finished tasks' keys the backend
	// forgot before their de-duplication window ended, since it started,
	// because its bound on them was reached (memory:
	// Options.MaxFinishedKeys): a task enqueued again with such a key
	// within its window was stored, not refused. Zero for a backend
	// without such a bound.
	FinishedKeysForgotten int64 `json:"finished_keys_forgotten"`
}

// DeadLetter is a task that failed for good, with why. Task.Attempt is
// the number of attempts it used.
type DeadLetter struct {
	Task   *task.Task `json:"task"`
	Reason string     `json:"reason"`
	At     time.Time  `json:"at"`
	// PayloadSize is the size of the task's payload in bytes, also when
	// the payload itself was left out (QueryDead without WithPayload).
	PayloadSize int `json:"payload_size"`
}

// Producer enqueues tasks.
type Producer interface {
	// Enqueue stores tasks on their queues (Task.Queue must be set; the
	// backend calls Task.Prepare). A task whose key is already present
	// (within the backend's de-duplication window) is dropped, without an
	// error, and marked: when the task with that key already finished
	// (acked or dead-lettered), with how (task.MarkFinished), so that the
	// caller can tell its source, which may never have heard it; when
	// another task holds the key and has not finished (queued, delayed,
	// in flight), as held by it (task.MarkHeld; the holder's id when the
	// backend knows it). A caller tells "stored" from "dropped" by these
	// marks alone. The same task enqueued again (the same Task, or one
	// with its ID and key) while it is stored is not marked held or
	// finished: it holds the key itself. It is marked stored already
	// (task.MarkStoredAgain): the earlier call stored it, this one stored
	// nothing. The very Task twice in one batch is stored by that batch,
	// and not marked. A task that is stored
	// never carries either mark (Task.Prepare drops one that came with
	// it).
	// A batch is accepted as a whole or the error says it was not.
	// Enqueue blocks while a bounded queue is full, until ctx ends.
	Enqueue(ctx context.Context, tasks ...*task.Task) error
}

// Consumer leases and settles deliveries.
type Consumer interface {
	// Lease blocks until at least one task of queue is deliverable, then
	// returns up to max of them leased for leaseFor. It returns ctx.Err()
	// when ctx ends first and ErrClosed when the backend closes.
	// Deliveries returned beside an error (a batch that broke off) are
	// leased all the same: the worker pool runs and settles them.
	Lease(ctx context.Context, queue string, max int, leaseFor time.Duration) ([]*Delivery, error)
	// Extend pushes the lease of d to now+leaseFor, for long tasks.
	Extend(ctx context.Context, d *Delivery, leaseFor time.Duration) error
	// Ack settles d as done: it is removed for good.
	Ack(ctx context.Context, d *Delivery) error
	// Retry settles d as failed for now: it becomes deliverable again at at
	// (or later), with its attempt counter increased on that delivery. A
	// backend whose own delivery limit forbids another delivery
	// dead-letters d instead and returns ErrDeadLettered.
	Retry(ctx context.Context, d *Delivery, at time.Time) error
	// DeadLetter settles d as failed for good, keeping it with reason.
	DeadLetter(ctx context.Context, d *Delivery, reason string) error
	// Release puts d back unsettled, deliverable again at once, without
	// counting the attempt: the next delivery carries the same attempt
	// number. A worker pool uses it for deliveries it leased but did not
	// run (pause, stop) and for handlers cancelled by a stop. A backend
	// that could not put d back uncounted returns an error (the delivery
	// then counts, as a lease that ran out would), or ErrDeadLettered
	// when that delivery was the last its delivery limit allows and it
	// dead-lettered d instead.
	Release(ctx context.Context, d *Delivery) error
}

// DeadLetters lists, re-drives and purges dead letters.
type DeadLetters interface {
	// ListDead returns up to limit dead letters of queue, oldest first
	// (limit <= 0 means all).
	ListDead(ctx context.Context, queue string, limit int) ([]DeadLetter, error)
	// Redrive moves the dead letters with the given task ids (all of the
	// queue's when ids is empty) back to the queue, with fresh attempt
	// counts. It returns how many this call moved (a dead letter that
	// two calls re-drive at once is counted by one of them only: the
	// control API reports it gone to the other). A re-driven task is queued
	// again, not finished: Enqueue drops a duplicate of it without the
	// finished mark of its dead letter (its source hears the outcome of
	// the re-driven task instead). A dead letter whose task the backend
	// knows to have succeeded since (JetStream: its key's marker) is left,
	// with the others re-driven and counted. Each dead letter left for a
	// reason of the backend's own is reported by a DeadLetterError with
	// its id, one of the errors the returned error joins (so is one the
	// call stopped at once its task was, or may have been, queued again:
	// JetStream's copy stored, its dead letter not deleted, or its
	// copy's publish unanswered, ErrOutcomeUnknown); a selected one that none
	// names and that is still a dead letter was not re-driven because
	// the call stopped, and its reason is the error's last part, which
	// is no DeadLetterError: why the call stopped.
	Redrive(ctx context.Context, queue string, ids ...string) (int, error)
	// Purge deletes the dead letters with the given ids (all when empty)
	// and returns how many went. It reports the dead letters it left as
	// Redrive does: each left for a reason of the backend's own by a
	// DeadLetterError with its id, the others not purged because the
	// call stopped by the last error, why it stopped.
	Purge(ctx context.Context, queue string, ids ...string) (int, error)
	// QueryDead returns one page of the dead letters of queue that match
	// q, oldest first, and the cursor of the next page ("" after the
	// last). Without q.WithPayload the tasks carry no payload (only
	// DeadLetter.PayloadSize), and the backend avoids reading payloads
	// where it can. A cursor the backend did not make is ErrBadCursor.
	QueryDead(ctx context.Context, queue string, q DeadQuery) (DeadPage, error)
	// GetDead returns the dead letter of queue whose task has id, with
	// its payload and headers, or an error wrapping ErrNotFound.
	GetDead(ctx context.Context, queue, id string) (DeadLetter, error)
}

// DeadLetterError is why a dead-letter action (Redrive, Purge) left one
// selected dead letter as it was, for a reason the backend has for that
// dead letter alone (JetStream: its task succeeded since, a purge of it
// began). ID is its task's id.
//
// The error of Redrive and Purge joins (errors.Join) one error per dead
// letter so left, each a DeadLetterError or wrapping one (errors.As finds
// it), and, when the call stopped before it was done, a last error that is
// none: why it stopped. A selected dead letter that no DeadLetterError
// names was done (counted), done by another call meanwhile (not counted),
// or not done because the call stopped before it or at it: that last
// error is its reason, never another dead letter's. A caller learns each
// id's reason from these errors alone, not from their text.
type DeadLetterError struct {
	ID  string
	Err error
}

// Error names the task and why its dead letter was left.
func (e *DeadLetterError) Error() string {
	if e.Err == nil {
		return "task " + e.ID + ": dead letter left as it was"
	}
	return "task " + e.ID + ": " + e.Err.Error()
}

// Unwrap returns Err, so that errors.Is finds the reason.
func (e *DeadLetterError) Unwrap() error { return e.Err }

// Bounds of DeadQuery.Limit.
const (
	DefaultDeadLimit = 100
	MaxDeadLimit     = 1000
)

// DeadQuery selects dead letters of one queue. Its zero value is the
// first page of every dead letter.
type DeadQuery struct {
	// Cursor continues after the page that returned it (DeadPage.Next);
	// empty starts at the oldest dead letter.
	Cursor string
	// Limit is the most dead letters a page holds: <= 0 means
	// DefaultDeadLimit (100), more than MaxDeadLimit (1000) means
	// MaxDeadLimit.
	Limit int
	// Kind keeps the tasks of this kind only (exact match).
	Kind string
	// Reason keeps the dead letters whose reason contains this text
	// (case-insensitive).
	Reason string
	// Since and Until keep the dead letters dead-lettered at or after
	// Since and before Until; a zero time does not bound.
	Since, Until time.Time
	// IDs keeps only the tasks with these ids.
	IDs []string
	// Key keeps the tasks with this de-duplication key only.
	Key string
	// WithPayload includes the payloads.
	WithPayload bool
}

// PageLimit returns q.Limit within its bounds.
func (q DeadQuery) PageLimit() int {
	switch {
	case q.Limit <= 0:
		return DefaultDeadLimit
	case q.Limit > MaxDeadLimit:
		return MaxDeadLimit
	}
	return q.Limit
}

// Matches reports whether d passes q's filters (kind, key, reason, time
// span, ids); the cursor and limit are the backend's business. It looks
// the id up in q.IDs one by one: a scan of many dead letters uses
// Matcher, which builds the set of ids once.
func (q DeadQuery) Matches(d DeadLetter) bool {
	return q.matchesFilters(d) && (len(q.IDs) == 0 || slices.Contains(q.IDs, d.Task.ID))
}

// Matcher returns Matches for a scan: the ids are put in a set once, so
// each dead letter costs one lookup however many ids q holds.
func (q DeadQuery) Matcher() func(DeadLetter) bool {
	if len(q.IDs) == 0 {
		return q.matchesFilters
	}
	ids := make(map[string]struct{}, len(q.IDs))
	for _, id := range q.IDs {
		ids[id] = struct{}{}
	}
	return func(d DeadLetter) bool {
		if !q.matchesFilters(d) {
			return false
		}
		_, ok := ids[d.Task.ID]
		return ok
	}
}

// matchesFilters is Matches but for the ids.
func (q DeadQuery) matchesFilters(d DeadLetter) bool {
	if d.Task == nil {
		return false
	}
	if q.Kind != "" && d.Task.Kind != q.Kind {
		return false
	}
	if q.Key != "" && d.Task.Key != q.Key {
		return false
	}
	if q.Reason != "" && !strings.Contains(strings.ToLower(d.Reason), strings.ToLower(q.Reason)) {
		return false
	}
	if !q.Since.IsZero() && d.At.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && !d.At.Before(q.Until) {
		return false
	}
	return true
}

// DeadPage is one page of QueryDead.
type DeadPage struct {
	Items []DeadLetter `json:"items"`
	// Next is the cursor of the next page; empty when this was the last.
	Next string `json:"next,omitempty"`
}

// DeadWatcher is an optional interface of a backend that dead-letters tasks
// on its own, outside any settlement call (JetStream, when the server gives
// up on a message after its maximum deliveries; memory, when a lease
// expired Options.MaxDeliveries times). The runtime registers one
// function; the backend calls it once for each such dead letter, after the
// dead letter is stored, and never drops one. fn must not block for long
// and must not call back into the backend (a backend may call it while it
// holds a lock).
type DeadWatcher interface {
	WatchDead(fn func(DeadLetter))
}

// FinishedWatcher is an optional interface of a backend that can find a
// task delivered again after it succeeded (JetStream: a settlement cut
// short after the success was recorded, an ack lost or refused, leaves the
// message to be delivered again, and that delivery is removed without
// being handed out). The settlement that was cut short may not have told
// the task's source, and nothing else would: the runtime registers one
// function, and the backend calls it for each such task that carries
// task.HeaderCompletion, once the delivery is removed, so that the source
// is told task.Succeeded. A source may so hear of a success twice (the
// first settlement told it, and only its ack was lost): Complete is
// idempotent. fn must not block for long and must not call back into the
// backend.
type FinishedWatcher interface {
	WatchFinished(fn func(*task.Task))
}

// Declarer is an optional interface of a backend that sets queues up
// ahead of their first use (JetStream: the stream and the durable
// consumer of each). The runtime declares every queue its routes use
// before its pools start, so that a queue the backend cannot set up (a
// conflicting stream, missing permissions) stops the host at start
// instead of failing its first Enqueue, and so that every queue is
// listed, with its counts, before its first task.
type Declarer interface {
	Declare(ctx context.Context, queues ...string) error
}

// Backend is the whole port a queue backend implements.
type Backend interface {
	Producer
	Consumer
	DeadLetters
	// Stats returns the counts of queue.
	Stats(ctx context.Context, queue string) (Stats, error)
	// Queues lists the queues the backend knows of, sorted.
	Queues(ctx context.Context) ([]string, error)
	// Close stops new leases (blocked Lease calls return ErrClosed) and
	// waits until every in-flight delivery is settled or ctx ends;
	// settlements during that wait succeed. What is unsettled when ctx
	// ends is not lost: a durable backend redelivers it after a restart.
	// Close is idempotent.
	Close(ctx context.Context) error
}
