package task

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
	"time"
)

// Well-known header names that the runtime sets or reads. Trace context
// headers (traceparent, tracestate, baggage) travel beside them.
const (
	// HeaderCompletion names the source that asked to be told when the task
	// is finally done. See platform/source.
	HeaderCompletion = "plba-completion"
	// HeaderParent is the id of the task that enqueued this one, if any.
	HeaderParent = "plba-parent"
	// HeaderRejected holds the reason a task was rejected before it could
	// be handled (see Rejected). A pool dead-letters such a task with that
	// reason without running a handler.
	HeaderRejected = "plba-rejected"
	// HeaderFinished is set by a queue backend on a task it dropped at
	// Enqueue because a task with the same key already finished within
	// the de-duplication window: the Outcome that one finished with
	// (succeeded or dead_lettered). See Finished. Prepare removes it (and
	// HeaderFinishedReason) from every task it prepares: a task is never
	// enqueued with it.
	HeaderFinished = "plba-finished"
	// HeaderFinishedReason is the dead letter's reason beside
	// HeaderFinished.
	HeaderFinishedReason = "plba-finished-reason"
	// HeaderHeld is set by a queue backend on a task it dropped at Enqueue
	// because another task with the same key was stored and is still
	// live (queued, delayed or in flight): the id of that task, or "" when
	// the backend could not tell which task it is. See Held. Like
	// HeaderFinished it is never stored: Prepare removes it.
	HeaderHeld = "plba-held"
)

// MarkFinished records on t, a duplicate that Enqueue dropped, how the
// task with its key finished. Backends call it; sources read it through
// Finished.
func MarkFinished(t *Task, o Outcome, reason string) {
	t.SetHeader(HeaderFinished, string(o))
	if reason != "" {
		t.SetHeader(HeaderFinishedReason, reason)
	}
}

// Finished reports whether Enqueue dropped t because a task with its key
// already finished, and with which outcome and reason. Whoever emitted t
// still owes its source that outcome: the task that finished may have
// been told to a process that no longer exists.
func Finished(t *Task) (o Outcome, reason string, ok bool) {
	v := Outcome(t.Header(HeaderFinished))
	if !v.Final() {
		return "", "", false
	}
	return v, t.Header(HeaderFinishedReason), true
}

// MarkHeld records on t, a duplicate that Enqueue dropped, that the task
// with id by (by "" when unknown) holds its key and has not finished.
// Backends call it; callers read it through Held. It carries no outcome: a
// source whose task is held hears the holder's completion, if any, through
// the holder.
func MarkHeld(t *Task, by string) { t.SetHeader(HeaderHeld, by) }

// MarkStoredAgain records on t, enqueued again while the backend stores
// it already (the same Task, or one with its ID and key), that this
// Enqueue stored nothing: an earlier one did. Backends call it; callers
// read it through StoredAgain. It is not a duplicate's mark (Dropped stays
// false, Held and Finished report nothing): t holds its key itself. It
// lives outside the headers, which a backend may share with the task's
// deliveries; a backend sets it on the caller's Task only, never on the
// one it keeps.
func MarkStoredAgain(t *Task) { t.again = true }

// StoredAgain reports whether the last Enqueue of t stored nothing because
// the backend stored t already (MarkStoredAgain): a counter of the tasks
// stored counts t once.
func StoredAgain(t *Task) bool { return t.again }

// Held reports whether Enqueue dropped t because another task with its key
// was stored and had not finished, and that task's id ("" when the backend
// could not tell). A task whose key finished is reported by Finished
// instead; a task that is stored is neither. Enqueue of a task that is
// stored already (the same Task, or one with its ID and key, enqueued
// again) marks nothing: that task holds the key, not another.
func Held(t *Task) (by string, ok bool) {
	by, ok = t.Headers[HeaderHeld]
	return by, ok
}

// Task is one unit of work: a kind, a payload and the metadata the runtime
// needs to deliver it at least once.
type Task struct {
	// ID uniquely identifies the task. Enqueue fills it when empty
	// (NewID). An ID the producer gives is taken as it is: nothing
	// checks that no other task has it, and one written like NewID's
	// (this or another process's prefix) may equal an id Prepare makes
	// later. Its key stays apart from the generated ones all the same
	// (see Key), so neither task is dropped as the other's duplicate;
	// but the two share an id, and what is looked up by id finds both.
	// A producer that takes ids from outside (a request, a message)
	// gives them as Key instead and leaves ID empty.
	ID string
	// Kind selects the handler (through the route registered for it).
	Kind string
	// Queue is the queue the task lives on. The producer fills it from the
	// route of Kind when empty.
	Queue string
	// Payload is the task's opaque body.
	Payload []byte
	// Headers carry metadata across the producer/consumer boundary: trace
	// context, the completion source, application values.
	Headers map[string]string
	// Key de-duplicates: a backend accepts one task per key (within its
	// de-duplication window). Empty means the ID. A key the producer chose
	// (or an ID it chose) is remembered after the task finished, across
	// restarts on JetStream; a task with neither gets a generated key that
	// nobody can re-emit, and is not remembered (KeyGenerated). The two
	// are separate spaces: a producer's key de-duplicates against
	// producers' keys only, never against a generated one, even when it
	// is written the same (an id seen in a log, its successor guessed),
	// so no producer can take the key of a task still to be made, nor
	// the key of one stored.
	Key string
	// Attempt is the 1-based number of the current delivery attempt. It is
	// 0 before the first delivery.
	Attempt int
	// EnqueuedAt is when the task was first enqueued.
	EnqueuedAt time.Time
	// NotBefore delays the first delivery until this time. Zero means now.
	NotBefore time.Time

	// keyMade is set by Prepare when it chose both the ID and the Key,
	// and kept while the Key and the ID are the id it made (madeLow).
	keyMade bool
	// again is set by a backend on a task enqueued again while it stores
	// it already (MarkStoredAgain); Prepare clears it.
	again bool
	// madeLow is the low half of the counter of the id Prepare made
	// (keyMade): with this process's prefix it tells that id from one
	// given since (madeHere). Beside the flags, in their word.
	madeLow uint32
}

// idPrefix is random per process; idSeq counts the ids made since start
// (from a random offset).
var (
	idPrefix [8]byte
	idHex    string // idPrefix in hex, as ids start
	idSeq    atomic.Uint64
)

func init() {
	var b [16]byte
	_, _ = rand.Read(b[:])
	copy(idPrefix[:], b[:8])
	idHex = hex.EncodeToString(idPrefix[:])
	idSeq.Store(binary.BigEndian.Uint64(b[8:]))
}

// NewID returns a 128-bit identifier in hex (32 characters), suitable for
// Task.ID: 64 random bits chosen once per process followed by a 64-bit
// counter, so ids are unique within a process and collide across
// processes only if two draw the same 64 random bits. It is cheap enough
// for every task (no system call).
func NewID() string {
	id, _ := newID()
	return id
}

// newID is NewID, with the counter the id holds.
func newID() (string, uint64) {
	var b [16]byte
	copy(b[:8], idPrefix[:])
	n := idSeq.Add(1)
	binary.BigEndian.PutUint64(b[8:], n)
	return hex.EncodeToString(b[:]), n
}

// madeHere reports whether t's ID is still the id Prepare made for it
// (keyMade): this process's prefix, and the low half of the counter it
// kept. An id given since (a prepared task cloned as a template, its id
// set) is not, even another task's generated id.
func (t *Task) madeHere() bool {
	id := t.ID
	if len(id) != 32 || id[:16] != idHex {
		return false
	}
	var raw [4]byte
	binary.BigEndian.PutUint32(raw[:], t.madeLow)
	var h [8]byte
	hex.Encode(h[:], raw[:])
	return id[24:] == string(h[:])
}

// Prepare fills the defaults that every backend relies on: an ID, a Key
// (the ID when empty) and EnqueuedAt (now when zero). Headers stay nil
// when there are none (SetHeader allocates the map). It drops
// HeaderFinished, HeaderFinishedReason and HeaderHeld: only a backend sets
// them, after Prepare, on a duplicate it dropped (MarkFinished, MarkHeld);
// a task that arrives with them (headers copied from outside, or a task
// enqueued again after a backend dropped it) would otherwise be reported
// as finished before it ran, or as not stored when it was. It clears
// StoredAgain likewise. A Key or ID that is no longer the id Prepare
// generated (set since) is the producer's from then on (KeyGenerated);
// a Key emptied since is the ID again. It is idempotent.
func (t *Task) Prepare(now time.Time) {
	switch {
	case t.ID == "":
		var n uint64
		t.ID, n = newID()
		t.keyMade = t.Key == ""
		if t.keyMade {
			t.Key, t.madeLow = t.ID, uint32(n)
		}
	case t.Key == "":
		t.Key = t.ID
		if t.keyMade && !t.madeHere() {
			// An id given after an earlier Prepare (a prepared task
			// cloned, its id set, its key emptied) is the producer's.
			t.keyMade = false
		}
	case t.keyMade && (t.Key != t.ID || !t.madeHere()):
		// A key (or an id) set after an earlier Prepare (a schedule's
		// key, on a task its build had prepared) is the producer's.
		t.keyMade = false
	}
	if t.EnqueuedAt.IsZero() {
		t.EnqueuedAt = now
	}
	Unmark(t)
	if t.again {
		t.again = false
	}
}

// Unmark removes from t the marks a backend sets on a duplicate it
// dropped (HeaderFinished, HeaderFinishedReason, HeaderHeld). Prepare
// calls it; so does whoever reads the marks after an Enqueue that may have
// failed before the backend prepared t, so that only this Enqueue's marks
// are read. A task without marks is not written to (a delete is a write
// even of a missing key): the same task enqueued again while a backend
// keeps it, its headers shared with the deliveries being handled, stays
// untouched.
func Unmark(t *Task) {
	for _, h := range [...]string{HeaderFinished, HeaderFinishedReason, HeaderHeld} {
		if _, ok := t.Headers[h]; ok {
			delete(t.Headers, h)
		}
	}
}

// Dropped reports whether Enqueue dropped t as a duplicate: the backend
// marked it held (Held) or finished (Finished), as it marks those and only
// those.
func Dropped(t *Task) bool {
	if len(t.Headers) == 0 {
		return false
	}
	if _, ok := Held(t); ok {
		return true
	}
	_, _, ok := Finished(t)
	return ok
}

// KeyGenerated reports whether Prepare chose the task's key: its producer
// set neither Key nor ID, so the key is a fresh identifier that no other
// producer can know. Such a task can only be enqueued again by the very
// call that made it (a retried publish), which a backend's de-duplication
// window covers; a backend therefore need not remember its key after the
// task finished. De-duplication across restarts is for tasks whose
// producer chose the key (or the ID).
//
// A generated key and a key a producer gave never de-duplicate against
// each other (see Key): a backend keeps them apart by this flag. It
// holds while the Key is the ID Prepare generated: Clone keeps it, and a
// copy of the Task keeps it; a Key set since (a schedule's own key on a
// task its build prepared), or an ID (a prepared task cloned as a
// template), makes it false at the next Prepare. A task a
// backend rebuilt from its store (a JetStream delivery, a dead letter)
// does not carry it: enqueued again, its ID, and so its key, is given.
func (t *Task) KeyGenerated() bool { return t.keyMade }

// Header returns the value of header name, or "" when absent.
func (t *Task) Header(name string) string {
	if t.Headers == nil {
		return ""
	}
	return t.Headers[name]
}

// SetHeader sets header name to value, allocating the map if needed. A
// header that holds value already is not written to (a source emitting
// again a task a backend keeps, whose headers its deliveries share, sets
// its completion header again).
func (t *Task) SetHeader(name, value string) {
	if t.Headers == nil {
		t.Headers = make(map[string]string, 4)
	}
	if v, ok := t.Headers[name]; ok && v == value {
		return
	}
	t.Headers[name] = value
}

// Rejected returns a copy of t without its payload that carries reason in
// HeaderRejected. A source whose task the backend refuses for good (too
// large to carry, say) emits Rejected(t, reason) instead: the stand-in
// keeps t's kind, key and headers, is dead-lettered with reason by the
// pool without running a handler, and so reaches the dead letters and the
// source's completion like any failed task.
func Rejected(t *Task, reason string) *Task {
	c := t.Clone()
	c.Payload = nil
	c.SetHeader(HeaderRejected, reason)
	return c
}

// Clone returns a deep copy of t (payload and headers included), for code
// that must keep a task beyond the call that handed it over. The copy
// keeps every header, HeaderCompletion included: a handler that makes a
// follow-up task from the task it handles need not remove it, the
// platform's producer stores a task with that header only when a
// source's emitter set it (worker.Producer), so that the source is told
// the outcome of its own task alone.
func (t *Task) Clone() *Task {
	c := *t
	if t.Payload != nil {
		c.Payload = append([]byte(nil), t.Payload...)
	}
	if t.Headers != nil {
		c.Headers = make(map[string]string, len(t.Headers))
		for k, v := range t.Headers {
			c.Headers[k] = v
		}
	}
	return &c
}
