package jetstream

import (
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// deadInfo is what a dead-letter copy adds to its task.
type deadInfo struct {
	reason   string
	at       time.Time
	attempts int
	seq      uint64 // where the dead-letter stream stores it (publishDead's answer)
	before   bool   // stored before: publishDead's copy was a duplicate of it
}

// encodeDead builds the dead-letter copy of t: its message (as
// encodeTask) with the Plba-Dead- headers beside HeaderTask, where the
// nats CLI shows the reason as it is.
func encodeDead(t *task.Task, subject, msgID string, keyed bool, d deadInfo) *nats.Msg {
	m := encodeTask(t, msgSpec{subject: subject, msgID: msgID, keyed: keyed, extra: 3})
	m.Header[HeaderDeadReason] = []string{sanitizeValue(d.reason)}
	m.Header[HeaderDeadAt] = []string{formatTime(d.at)}
	m.Header[HeaderDeadAttempts] = []string{strconv.Itoa(d.attempts)}
	return m
}

// decodeDead rebuilds a dead letter from its stored copy, in either
// form (see decodeTask).
func decodeDead(h nats.Header, data []byte, queueName string) (queue.DeadLetter, error) {
	t, _, err := decodeTask(h, data, queueName)
	if err != nil {
		return queue.DeadLetter{}, err
	}
	dl := queue.DeadLetter{Task: t, Reason: h.Get(HeaderDeadReason)}
	if at, err := time.Parse(time.RFC3339Nano, h.Get(HeaderDeadAt)); err == nil {
		dl.At = at
	}
	if n, err := strconv.Atoi(h.Get(HeaderDeadAttempts)); err == nil && n >= 0 && n <= maxAttemptsField {
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
