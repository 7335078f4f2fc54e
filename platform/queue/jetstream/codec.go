package jetstream

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// NATS header names that carry the task's own fields. Task.Headers travel
// beside them under their own names (traceparent, tracestate, baggage,
// plba-completion, ...).
const (
	HeaderID         = "Plba-Task-Id"
	HeaderKind       = "Plba-Task-Kind"
	HeaderKey        = "Plba-Task-Key"
	HeaderEnqueuedAt = "Plba-Task-Enqueued-At"
	HeaderNotBefore  = "Plba-Task-Not-Before"
	// HeaderAttempts is the number of attempts a task had used before it
	// was published again by Release; its deliveries count on from there.
	HeaderAttempts = "Plba-Task-Attempts"

	// HeaderDeadReason, HeaderDeadAt and HeaderDeadAttempts are added to a
	// dead-lettered copy.
	HeaderDeadReason   = "Plba-Dead-Reason"
	HeaderDeadAt       = "Plba-Dead-At"
	HeaderDeadAttempts = "Plba-Dead-Attempts"
)

// hdrKeyGenerated marks the message of a task whose key Prepare
// generated (task.KeyGenerated): its key is not remembered once it
// finished (keyedMsg). A message without it, as every message an earlier
// version stored, is remembered.
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
	return hasPrefixFold(name, "nats-") || hasPrefixFold(name, "plba-task-") || hasPrefixFold(name, "plba-dead-")
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
	for k, v := range t.Headers {
		if !validHeaderName(k) || !validHeaderValue(v) {
			return fmt.Errorf("jetstream: task %q: header %q is not a valid NATS header: %w", t.ID, k, queue.ErrInvalidTask)
		}
		if reserved(k) {
			return fmt.Errorf("jetstream: task %q: header %q uses a reserved prefix (Nats-, Plba-Task-, Plba-Dead-): %w", t.ID, k, queue.ErrInvalidTask)
		}
	}
	return nil
}

// encodeTask builds the message for t (already prepared and checked).
// msgID is the de-duplication id (the task key, or a derived one). keyed
// is false for a task whose key Prepare generated (task.KeyGenerated):
// its message carries no Plba-Task-Key but Plba-Task-Key-Generated, which
// is how a delivery knows that its key need not be remembered once it
// finished (done.go).
//
// Headers that repeat another are left out to keep every message (and
// its decoding on every delivery) small: Plba-Task-Id when it equals the
// Nats-Msg-Id. decodeTask fills it back in, and the key from the id when
// Plba-Task-Key is absent.
func encodeTask(t *task.Task, subject, msgID string, keyed bool) *nats.Msg {
	n := len(t.Headers) + 2 // kind, enqueued at
	withID := msgID != t.ID
	withKey := keyed || t.Key != t.ID
	if withID {
		n++
	}
	if withKey {
		n++
	}
	if !keyed {
		n++
	}
	if !t.NotBefore.IsZero() {
		n++
	}
	if msgID != "" {
		n++
	}
	// One backing array for every value: a header is a one-element slice
	// of it.
	vals := make([]string, 0, n)
	h := make(nats.Header, n)
	for k, v := range t.Headers {
		vals = setHeader(h, vals, k, v)
	}
	if withID {
		vals = setHeader(h, vals, HeaderID, t.ID)
	}
	vals = setHeader(h, vals, HeaderKind, t.Kind)
	if withKey {
		vals = setHeader(h, vals, HeaderKey, t.Key)
	}
	if !keyed {
		vals = setHeader(h, vals, hdrKeyGenerated, "1")
	}
	vals = setHeader(h, vals, HeaderEnqueuedAt, formatTime(t.EnqueuedAt))
	if !t.NotBefore.IsZero() {
		vals = setHeader(h, vals, HeaderNotBefore, formatTime(t.NotBefore))
	}
	if msgID != "" {
		setHeader(h, vals, hdrMsgID, msgID)
	}
	return &nats.Msg{Subject: subject, Header: h, Data: t.Payload}
}

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

// errUndecodable marks a message that is not a task (published by someone
// else, or damaged).
var errUndecodable = errors.New("jetstream: message is not a task")

// decodeTask rebuilds a task from a stored message. data is kept, not
// copied. A missing Plba-Task-Id is the Nats-Msg-Id, a missing
// Plba-Task-Key the id (see encodeTask).
func decodeTask(h nats.Header, data []byte, queueName string) (*task.Task, error) {
	t := &task.Task{Queue: queueName, Payload: data}
	var msgID string
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		switch k {
		case HeaderID:
			t.ID = vs[0]
		case HeaderKind:
			t.Kind = vs[0]
		case HeaderKey:
			t.Key = vs[0]
		case hdrMsgID:
			msgID = vs[0]
		case HeaderEnqueuedAt:
			at, err := time.Parse(time.RFC3339Nano, vs[0])
			if err != nil {
				return nil, fmt.Errorf("%w: bad %s %q", errUndecodable, k, vs[0])
			}
			t.EnqueuedAt = at
		case HeaderAttempts:
			n, err := strconv.Atoi(vs[0])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: bad %s %q", errUndecodable, k, vs[0])
			}
			t.Attempt = n // the base; deliver adds this message's deliveries
		case HeaderNotBefore:
			at, err := time.Parse(time.RFC3339Nano, vs[0])
			if err != nil {
				return nil, fmt.Errorf("%w: bad %s %q", errUndecodable, k, vs[0])
			}
			t.NotBefore = at
		default:
			if !reserved(k) {
				if t.Headers == nil {
					t.Headers = make(map[string]string, len(h))
				}
				t.Headers[k] = vs[0]
			}
		}
	}
	if t.ID == "" {
		t.ID = msgID
	}
	if t.ID == "" || t.Kind == "" {
		return nil, fmt.Errorf("%w: missing %s (or %s) or %s header", errUndecodable, HeaderID, hdrMsgID, HeaderKind)
	}
	if t.Key == "" {
		t.Key = t.ID
	}
	return t, nil
}

// keyedMsg reports whether a task's key is remembered once it finished:
// unless its message says the key was generated (Plba-Task-Key-Generated;
// see encodeTask). A message stored before that header existed is
// remembered, as it was then, whether its producer chose the key, only
// the id (no Plba-Task-Key: the key was left out when it equalled the
// id), or neither.
func keyedMsg(h nats.Header) bool { return len(h[hdrKeyGenerated]) == 0 }

// deadInfo is what a dead-letter copy adds to its task.
type deadInfo struct {
	reason   string
	at       time.Time
	attempts int
}

func encodeDead(t *task.Task, subject, msgID string, keyed bool, d deadInfo) *nats.Msg {
	m := encodeTask(t, subject, msgID, keyed)
	m.Header[HeaderDeadReason] = []string{sanitizeValue(d.reason)}
	m.Header[HeaderDeadAt] = []string{formatTime(d.at)}
	m.Header[HeaderDeadAttempts] = []string{strconv.Itoa(d.attempts)}
	return m
}

func decodeDead(h nats.Header, data []byte, queueName string) (queue.DeadLetter, error) {
	t, err := decodeTask(h, data, queueName)
	if err != nil {
		return queue.DeadLetter{}, err
	}
	dl := queue.DeadLetter{Task: t, Reason: h.Get(HeaderDeadReason)}
	if at, err := time.Parse(time.RFC3339Nano, h.Get(HeaderDeadAt)); err == nil {
		dl.At = at
	}
	if n, err := strconv.Atoi(h.Get(HeaderDeadAttempts)); err == nil {
		t.Attempt = n
	}
	return dl, nil
}

// maxReason bounds a dead-letter reason kept in a header.
const maxReason = 4096

// sanitizeValue makes s safe as a header value: line breaks become spaces
// and it is cut to maxReason bytes.
func sanitizeValue(s string) string {
	if len(s) > maxReason {
		s = s[:maxReason]
	}
	if validHeaderValue(s) {
		return s
	}
	return strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(s)
}
