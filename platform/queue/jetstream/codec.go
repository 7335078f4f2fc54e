package jetstream

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// HeaderTask is the NATS header that carries a task's own fields (kind,
// id, key, enqueue time, NotBefore, attempts used before a Release, and
// whether Prepare generated the key, and its traceparent) in one line of
// text; see appendTaskHeader for its format. The other Task.Headers
// travel beside it under their own names (tracestate, baggage,
// plba-completion, ...), and the task's key (or a key derived from it)
// is its Nats-Msg-Id.
const HeaderTask = "Plba-Task"

// Header names of the format before HeaderTask, one header per field.
// Messages stored in that form (work streams and dead letters keep them
// across upgrades) are still decoded; nothing writes them any more.
const (
	HeaderID         = "Plba-Task-Id"
	HeaderKind       = "Plba-Task-Kind"
	HeaderKey        = "Plba-Task-Key"
	HeaderEnqueuedAt = "Plba-Task-Enqueued-At"
	HeaderNotBefore  = "Plba-Task-Not-Before"
	// HeaderAttempts is the number of attempts a task had used before it
	// was published again by Release; its deliveries count on from there.
	HeaderAttempts = "Plba-Task-Attempts"
)

// HeaderDeadReason, HeaderDeadAt and HeaderDeadAttempts are added to a
// dead-lettered copy, beside its HeaderTask.
const (
	HeaderDeadReason   = "Plba-Dead-Reason"
	HeaderDeadAt       = "Plba-Dead-At"
	HeaderDeadAttempts = "Plba-Dead-Attempts"
	// HeaderDeadDropped marks a dead letter that could not keep all of
	// its task: "payload", or "payload headers", when the copy would not
	// have fitted the server's max_payload (a message published by
	// someone else, larger than Enqueue allows). Its reason says so, and
	// Redrive leaves it.
	HeaderDeadDropped = "Plba-Dead-Dropped"
)

// hdrKeyGenerated marked, in the format before HeaderTask, the message of
// a task whose key Prepare generated (task.KeyGenerated): its key is not
// remembered once it finished. A message without it (nor the
// key-generated flag of HeaderTask) is remembered.
const hdrKeyGenerated = "Plba-Task-Key-Generated"

// Server headers this package sets.
const (
	hdrMsgID          = "Nats-Msg-Id"
	hdrSchedule       = "Nats-Schedule"
	hdrScheduleTarget = "Nats-Schedule-Target"
)

// reserved reports whether a header name is owned by this package or by
// the NATS server and so may not appear in Task.Headers.
func reserved(name string) bool {
	return hasPrefixFold(name, "nats-") || hasPrefixFold(name, "plba-task-") || hasPrefixFold(name, "plba-dead-") ||
		strings.EqualFold(name, HeaderTask)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// validHeaderName rejects names that would corrupt the NATS header block.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == ':' || c >= 0x7f {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	return strings.IndexByte(s, '\r') < 0 && strings.IndexByte(s, '\n') < 0
}

// checkTask validates what Enqueue needs before touching the network.
func checkTask(t *task.Task) error {
	if t == nil {
		return fmt.Errorf("jetstream: nil task: %w", queue.ErrInvalidTask)
	}
	if t.Kind == "" || t.Queue == "" {
		return fmt.Errorf("jetstream: task %q without kind or queue: %w", t.ID, queue.ErrInvalidTask)
	}
	for _, v := range [...]string{t.ID, t.Kind, t.Key} {
		if !validHeaderValue(v) {
			return fmt.Errorf("jetstream: task %q: id, kind or key contains a line break: %w", t.ID, queue.ErrInvalidTask)
		}
	}
	for _, at := range [...]time.Time{t.EnqueuedAt, t.NotBefore} {
		if y := at.UTC().Year(); !at.IsZero() && (y < 1 || y > 9999) {
			return fmt.Errorf("jetstream: task %q: time %s is outside the years 1 to 9999 (UTC) that its message can carry: %w", t.ID, at, queue.ErrInvalidTask)
		}
	}
	for k, v := range t.Headers {
		if !validHeaderName(k) || !validHeaderValue(v) {
			return fmt.Errorf("jetstream: task %q: header %q is not a valid NATS header: %w", t.ID, k, queue.ErrInvalidTask)
		}
		if reserved(k) {
			return fmt.Errorf("jetstream: task %q: header %q is reserved (Plba-Task, or the prefix Nats-, Plba-Task- or Plba-Dead-): %w", t.ID, k, queue.ErrInvalidTask)
		}
	}
	return nil
}

// msgSpec says how encodeTask writes a task's message.
type msgSpec struct {
	subject string
	// msgID is the de-duplication id (Nats-Msg-Id): the task key, or one
	// derived from it; "" for none.
	msgID string
	// keyed is false for a task whose key Prepare generated
	// (task.KeyGenerated): its HeaderTask carries the key-generated flag,
	// which is how a delivery knows that its key need not be remembered
	// once it finished (done.go).
	keyed bool
	// keepID writes the id into HeaderTask even when it equals msgID (a
	// message schedule: the message it produces has no Nats-Msg-Id).
	keepID bool
	// attempts is the number of attempts the task used before a Release.
	attempts int
	// extra is the number of headers the caller adds to the message.
	extra int
}

// taskMsg is a task's message with room for its header values and the
// text of its HeaderTask: one allocation for all three (320 bytes, a size
// class of its own) when the text fits, as a task's with a traceparent
// usually does.
type taskMsg struct {
	msg  nats.Msg
	vals [3]string
	text [168]byte
}

// taskMsgs holds messages Enqueue is done with (recycle), with their
// header maps, for the next encodeTask: the three allocations of a task's
// message (the taskMsg, its map and the map's slots) are then made once
// for many tasks.
var taskMsgs sync.Pool

// encodeTask builds the message for t (already prepared and checked):
// Task.Headers under their own names, the task's fields in HeaderTask and
// the Nats-Msg-Id. Fields that repeat another are left out to keep every
// message (and its decoding on every delivery) small: the id when it
// equals the Nats-Msg-Id (unless s.keepID), the key when it equals the
// id. decodeTask fills them back in.
func encodeTask(t *task.Task, s msgSpec) *nats.Msg {
	return &encodeTaskMsg(t, s).msg
}

// encodeTaskMsg is encodeTask, returning the taskMsg around the message,
// which the caller may recycle once nothing uses the message any more.
func encodeTaskMsg(t *task.Task, s msgSpec) *taskMsg {
	n := len(t.Headers) + 1 // HeaderTask
	if s.msgID != "" {
		n++
	}
	tp := traceField(t) // "": a header of its own
	if tp != "" {
		n-- // a field of HeaderTask
	}
	tm, _ := taskMsgs.Get().(*taskMsg)
	if tm == nil {
		tm = new(taskMsg)
	}
	h := tm.msg.Header // an empty map of a recycled message, or nil
	if h == nil {
		h = make(nats.Header, n+s.extra)
	}
	tm.msg = nats.Msg{Subject: s.subject, Data: t.Payload}
	// One backing array for every value: a header is a one-element slice
	// of it.
	vals := tm.vals[:0]
	if n > len(tm.vals) {
		vals = make([]string, 0, n)
	}
	for k, v := range t.Headers {
		if tp != "" && k == hdrTraceparent {
			continue
		}
		vals = setHeader(h, vals, k, v)
	}
	v := appendTaskHeader(tm.text[:0], t, writesID(t, s), s.keyed, s.attempts, tp)
	// The value is the bytes just written (in tm.text, or in the array
	// append moved them to when they did not fit): nothing writes them
	// again, so they can be the string without a copy.
	vals = setHeader(h, vals, HeaderTask, unsafe.String(unsafe.SliceData(v), len(v)))
	if s.msgID != "" {
		setHeader(h, vals, hdrMsgID, s.msgID)
	}
	tm.msg.Header = h
	return tm
}

// recycle gives tm back for another encodeTask. Nothing may use its
// message again, nor any value of its headers (HeaderTask's is written in
// tm.text): Enqueue recycles a message once the server acknowledged it
// (pubBatch.acked), after which nats.go holds it no more.
func (tm *taskMsg) recycle() {
	h := tm.msg.Header
	if len(h) > maxRecycledHeaders {
		return // a large map: not kept for tasks that mostly have few
	}
	clear(h)
	tm.msg = nats.Msg{Header: h}
	tm.vals = [len(tm.vals)]string{}
	taskMsgs.Put(tm)
}

// maxRecycledHeaders is the most headers a recycled message may have had:
// a small map's (up to 8 entries, one group of slots).
const maxRecycledHeaders = 8

// writesID reports whether t's message written with s carries the id in
// HeaderTask: unless s.keepID, it is left out when the Nats-Msg-Id names
// it.
func writesID(t *task.Task, s msgSpec) bool {
	return s.keepID || s.msgID != t.ID
}

// msgIDOf is the Nats-Msg-Id that de-duplicates key; made says whether
// task.Prepare generated it (task.KeyGenerated: a task's id, 32 lowercase
// hex digits). A generated key is its own. So is a producer's key, unless
// it could be taken for an id that is not its own: one nats.go would
// change on the wire (it trims the blanks around a header value, so "abc "
// would arrive as "abc", the id of another task), one written as a
// generated key (of any process: the duplicate window is the stream's,
// which every process shares; a producer's key must not take the id of a
// keyless task still to come, nor be taken by a stored one), one written
// as a Release or redrive copy's id (a key, "-release-" or "-redrive-",
// digits: it would swallow that copy) or one starting with
// keyHashPrefix. Such a key's is keyHashPrefix and the hex of its
// SHA-256, which is none of those. So the generated keys, the producers'
// keys and the copies' ids never share a Nats-Msg-Id, and within each
// the mapping is one to one (SHA-256 taken as such).
//
// Messages stored before the producer's keys written as generated ones
// or copies' ids were hashed carry such a key as their Nats-Msg-Id: they
// decode the same (HeaderTask writes the id and key whenever the
// Nats-Msg-Id is not the id), and are no longer de-duplicated against by
// a task with their key within the duplicate window (the finished-key
// markers, by key, still are).
func msgIDOf(key string, made bool) string {
	if made || ownMsgID(key) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return keyHashPrefix + hex.EncodeToString(sum[:])
}

// keyHashPrefix starts the Nats-Msg-Id of a producer's key that is not
// its own (msgIDOf). A producer's key starting with "Plba-Key-" is hashed
// too, which keeps the prefix for the ids this package derives.
const keyHashPrefix = "Plba-Key-SHA256:"

// ownMsgID reports whether key, a producer's, is its own Nats-Msg-Id
// (msgIDOf).
func ownMsgID(key string) bool {
	if key == "" {
		return true
	}
	if isBlank(key[0]) || isBlank(key[len(key)-1]) || strings.HasPrefix(key, "Plba-Key-") {
		return false
	}
	return !generatedShape(key) && !copyShape(key)
}

// generatedShape reports whether key is written as task.NewID writes ids:
// 32 lowercase hex digits.
func generatedShape(key string) bool {
	if len(key) != 32 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// copyShape reports whether key is written as the Nats-Msg-Id of a
// Release or redrive copy: anything, "-release-" or redriveMark, digits.
func copyShape(key string) bool {
	i := len(key)
	for i > 0 && key[i-1] >= '0' && key[i-1] <= '9' {
		i--
	}
	if i == len(key) {
		return false
	}
	return strings.HasSuffix(key[:i], releaseMark) || strings.HasSuffix(key[:i], redriveMark)
}

// releaseMark stands in the Nats-Msg-Id of a Release's copy between its
// key's and the sequence of the message it copies.
const releaseMark = "-release-"

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// copyRoom is what t's message written with s must leave free of the
// server's max_payload for its copies. A dead-letter copy adds the reason
// and its headers (deadLetterRoom); a Release or redrive copy a longer
// Nats-Msg-Id and the attempts used (releaseRoom). Both have a
// Nats-Msg-Id of their own, so they write the id into HeaderTask,
// escaped, where t's message may have left it to its Nats-Msg-Id: the
// dead-letter copy drops that Nats-Msg-Id, the Release copy keeps it.
func copyRoom(t *task.Task, s msgSpec) int64 {
	if writesID(t, s) {
		return deadLetterRoom
	}
	idField := int64(len(" " + fieldID + "="))
	for i := 0; i < len(t.ID); i++ {
		idField++
		if escaped(t.ID[i]) {
			idField += 2 // %XX
		}
	}
	return max(deadLetterRoom+idField-int64(len(s.msgID)), idField+releaseRoom)
}

// releaseRoom bounds what a Release or redrive copy adds beside the id:
// "-release-" or "-redrive-" and a sequence number in its Nats-Msg-Id,
// and the attempts field.
const releaseRoom = 64

// setHeader sets h[k] to v, stored in vals (which has room for it), and
// returns vals.
func setHeader(h nats.Header, vals []string, k, v string) []string {
	vals = append(vals, v)
	h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	return vals
}

// formatTime renders t in UTC as RFC 3339 with nanoseconds.
func formatTime(t time.Time) string {
	var buf [40]byte
	return string(t.UTC().AppendFormat(buf[:0], time.RFC3339Nano))
}
