package jetstream

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plba/plba/platform/task"
)

// errUndecodable marks a message that is not a task (published by someone
// else, or damaged).
var errUndecodable = errors.New("jetstream: message is not a task")

// DecodeTask rebuilds the task of a message this package stored on a work
// stream or in the dead letters, from its headers and payload (kept, not
// copied), for tools that read the streams themselves. It reads both
// forms: HeaderTask and the separate headers that earlier versions wrote
// (HeaderID, HeaderKind, ...). Task.Attempt is the number of attempts
// used before a Release, not counting the message's own deliveries.
func DecodeTask(h nats.Header, data []byte, queueName string) (*task.Task, error) {
	t, _, err := decodeTask(h, data, queueName)
	return t, err
}

// decodeTask rebuilds a task from a stored message, and reports whether
// its key is remembered once it finished (keyed: unless the message says
// that Prepare generated the key). data is kept, not copied. A missing id
// is the Nats-Msg-Id, a missing key the id (see encodeTask).
//
// A message stored before HeaderTask existed carries one header per field
// and is read as such; one stored before the generated-key mark existed
// is keyed, as it was then, whether its producer chose the key, only the
// id (no Plba-Task-Key: the key was left out when it equalled the id), or
// neither.
func decodeTask(h nats.Header, data []byte, queueName string) (*task.Task, bool, error) {
	t := new(task.Task)
	keyed, err := decodeTaskInto(t, h, data, queueName)
	if err != nil {
		return nil, false, err
	}
	return t, keyed, nil
}

// decodeTaskInto is decodeTask into t, a zero task (a delivery's lives in
// its receipt). t is partly filled when it fails.
func decodeTaskInto(t *task.Task, h nats.Header, data []byte, queueName string) (keyed bool, err error) {
	t.Queue, t.Payload = queueName, data
	var msgID, legacy, traceparent string
	keyed = true
	seenTask := false
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		switch k {
		case HeaderTask:
			if len(vs) > 1 {
				// Which one is the task? As a field given twice.
				return false, fmt.Errorf("%w: %s given %d times", errUndecodable, k, len(vs))
			}
			gen, tp, err := parseTaskHeader(vs[0], t)
			traceparent = tp
			if err != nil {
				return false, fmt.Errorf("%w: bad %s %q: %w", errUndecodable, k, clip(vs[0]), err)
			}
			keyed = keyed && !gen
			seenTask = true
		case hdrMsgID:
			msgID = vs[0]
		case HeaderID:
			t.ID, legacy = vs[0], k
		case HeaderKind:
			t.Kind, legacy = vs[0], k
		case HeaderKey:
			t.Key, legacy = vs[0], k
		case hdrKeyGenerated:
			keyed, legacy = false, k
		case HeaderEnqueuedAt:
			legacy = k
			at, err := time.Parse(time.RFC3339Nano, vs[0])
			if err != nil {
				return false, fmt.Errorf("%w: bad %s %q", errUndecodable, k, clip(vs[0]))
			}
			t.EnqueuedAt = at
		case HeaderAttempts:
			legacy = k
			n, err := strconv.Atoi(vs[0])
			if err != nil || n < 0 || n > maxAttemptsField {
				return false, fmt.Errorf("%w: bad %s %q", errUndecodable, k, clip(vs[0]))
			}
			t.Attempt = n // the base; deliver adds this message's deliveries
		case HeaderNotBefore:
			legacy = k
			at, err := time.Parse(time.RFC3339Nano, vs[0])
			if err != nil {
				return false, fmt.Errorf("%w: bad %s %q", errUndecodable, k, clip(vs[0]))
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
	if traceparent != "" {
		// After the headers: the field wins over a traceparent header.
		if t.Headers == nil {
			t.Headers = make(map[string]string, 1)
		}
		t.Headers[hdrTraceparent] = traceparent
	}
	if seenTask && legacy != "" {
		// Which of the two would win depends on the map's order: the
		// task would change from one delivery to the next.
		return false, fmt.Errorf("%w: both %s and %s (the earlier form)", errUndecodable, HeaderTask, legacy)
	}
	if legacy != "" && !(validHeaderValue(t.ID) && validHeaderValue(t.Kind) && validHeaderValue(t.Key)) {
		// A client may send a lone CR or LF in a value; no copy of the
		// task (a Release, the dead letter) could carry it.
		return false, fmt.Errorf("%w: id, kind or key holds a line break", errUndecodable)
	}
	if t.ID == "" {
		if !validHeaderValue(msgID) {
			return false, fmt.Errorf("%w: %s %q holds a line break", errUndecodable, hdrMsgID, clip(msgID))
		}
		t.ID = msgID
	}
	if t.ID == "" || t.Kind == "" {
		return false, fmt.Errorf("%w: missing id (%s, or %s) or kind", errUndecodable, HeaderTask, hdrMsgID)
	}
	if t.Key == "" {
		t.Key = t.ID
	}
	return keyed, nil
}

// clip cuts a header value quoted in an error to 128 bytes.
func clip(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}

// clipBytes cuts b, quoted in a log, to 128 bytes.
func clipBytes(b []byte) []byte {
	if len(b) > 128 {
		return b[:128]
	}
	return b
}
