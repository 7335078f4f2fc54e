package jetstream

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// maxStreamName is the longest stream name the server accepts.
const maxStreamName = 255

// encodeToken turns an arbitrary string into a token that is valid in a
// stream name and as a single subject token: bytes in [A-Za-z0-9-] pass,
// every other byte becomes "_" and two upper-case hex digits. The mapping
// is injective, so distinct queue names never share a stream.
func encodeToken(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tokenByte(c) {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('_')
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&15])
	}
	return sb.String()
}

// maxSchedToken bounds the token of a schedule subject (schedToken): the
// publish of a delayed task carries the subject in its control line, which
// the server limits (max_control_line, 4 KiB by default) and answers
// beyond that by closing the connection.
const maxSchedToken = 256

// schedName names the message schedule of t, a delayed task whose
// Nats-Msg-Id is msgID (made: its key generated). A new schedule on a
// subject replaces the one before (the server keeps one per subject),
// so two delayed tasks must not share one: a task whose key Prepare
// generated, or whose key is its id and its own Nats-Msg-Id, has its id
// (as every schedule had before: the same task enqueued again replaces a
// schedule stored by an earlier version); any other task its id and,
// after a line break (which no id holds), its Nats-Msg-Id. The first are
// apart from each other (a generated id is never a producer's key's own
// Nats-Msg-Id: msgIDOf) and from the others (no line break). Two tasks
// with one id given by producers (or one given and one generated) have
// two schedules, unless they are the same task (its id and key), whose
// schedule enqueued again replaces itself.
func schedName(t *task.Task, made bool, msgID string) string {
	if made || msgID == t.ID {
		return t.ID
	}
	return t.ID + "\n" + msgID
}

// schedToken is the last token of the schedule subject of the delayed
// task named id (schedName): encodeToken(id) when that is at most maxSchedToken bytes,
// otherwise "_H" and the hex of the id's SHA-256, which encodeToken never
// produces ('H' is no hex digit). Nothing decodes it: the task's id
// travels in its HeaderTask.
func schedToken(id string) string {
	if enc := encodeToken(id); len(enc) <= maxSchedToken {
		return enc
	}
	sum := sha256.Sum256([]byte(id))
	return "_H" + hex.EncodeToString(sum[:])
}

// decodeToken reverses encodeToken; ok is false for strings encodeToken
// cannot have produced.
func decodeToken(s string) (string, bool) {
	if strings.IndexByte(s, '_') < 0 {
		for i := 0; i < len(s); i++ {
			if !tokenByte(s[i]) {
				return "", false
			}
		}
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_':
			if i+2 >= len(s) {
				return "", false
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			b = append(b, hi<<4|lo)
			i += 2
		case tokenByte(c):
			b = append(b, c)
		default:
			return "", false
		}
	}
	// Only the canonical form: "_71" decodes to "q" too, but "q" is
	// encoded "q", so a stream named with "_71" is not ours.
	if encodeToken(string(b)) != s {
		return "", false
	}
	return string(b), true
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// names derives every stream, subject and consumer name from the prefix.
type names struct {
	prefix   string // e.g. "PLBA"
	consumer string // durable consumer name
}

// queueNames are the NATS names of one queue.
type queueNames struct {
	queue       string // the queue's own name
	stream      string // <prefix>_Q_<enc>
	subject     string // <prefix>.q.<enc>
	schedPrefix string // <prefix>.s.<enc>. (one schedule subject per delayed task: schedName)
	deadSubject string // <prefix>.dead.<enc>
	donePrefix  string // <prefix>.done.<enc>. (one marker subject per finished key)
}

func (n names) deadStream() string     { return n.prefix + "_DEAD" }
func (n names) doneStream() string     { return n.prefix + "_DONE" }
func (n names) doneSubjects() string   { return n.prefix + ".done.>" }
func (n names) advisoryPrefix() string { return n.prefix + "_ADV_" }
func (n names) advisoryStream() string { return n.advisoryPrefix() + n.consumer }

// advisorySubject is the subject of the max-deliveries advisories of the
// durable consumer on one work stream.
func (n names) advisorySubject(stream string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + stream + "." + n.consumer
}
func (n names) deadSubjects() string { return n.prefix + ".dead.>" }
func (n names) streamPrefix() string { return n.prefix + "_Q_" }
func (n names) queueSubjects() string {
	return n.prefix + ".q.*"
}

func (n names) forQueue(q string) (queueNames, error) {
	if q == "" {
		return queueNames{}, fmt.Errorf("jetstream: empty queue name: %w", queue.ErrInvalidTask)
	}
	enc := encodeToken(q)
	qn := queueNames{
		queue:       q,
		stream:      n.streamPrefix() + enc,
		subject:     n.prefix + ".q." + enc,
		schedPrefix: n.prefix + ".s." + enc + ".",
		deadSubject: n.prefix + ".dead." + enc,
		donePrefix:  n.prefix + ".done." + enc + ".",
	}
	if len(qn.stream) > maxStreamName {
		return queueNames{}, fmt.Errorf("jetstream: queue name %.40q... too long: %w", q, queue.ErrInvalidTask)
	}
	return qn, nil
}

// queueOfStream returns the queue name of a work stream, if it is one.
func (n names) queueOfStream(stream string) (string, bool) {
	rest, ok := strings.CutPrefix(stream, n.streamPrefix())
	if !ok || rest == "" {
		return "", false
	}
	return decodeToken(rest)
}

// queueOfDeadSubject returns the queue name of a dead-letter subject.
func (n names) queueOfDeadSubject(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, n.prefix+".dead.")
	if !ok || rest == "" {
		return "", false
	}
	return decodeToken(rest)
}
