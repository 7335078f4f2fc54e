package jetstream

import (
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plba/plba/platform/task"
)

// foreignPrefix goes before the name of a header this package or the
// server owns (reserved) in a foreign message's stand-in.
const foreignPrefix = "Plba-Foreign-"

// foreignStandIn is the task that stands for the message at seq of
// queueName's work stream, which is not a task (h, data, stored at at):
// id "seq-<n>", kind "?", the message's payload, and all its headers, so
// that its dead letter shows what was sent: each under foreignName of
// its name, the values of a header given more than once joined by ", ",
// and a value holding a CR or LF (a client can send a lone one) quoted
// as a Go string.
func foreignStandIn(queueName string, seq uint64, h nats.Header, data []byte, at time.Time) *task.Task {
	t := &task.Task{ID: "seq-" + strconv.FormatUint(seq, 10), Kind: "?", Queue: queueName, Payload: data, EnqueuedAt: at}
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		v := vs[0]
		if len(vs) > 1 {
			v = strings.Join(vs, ", ")
		}
		if !validHeaderValue(v) {
			v = strconv.Quote(v)
		}
		t.SetHeader(foreignName(k), v)
	}
	return t
}

// foreignName is the name under which a foreign message's header k is
// kept in its stand-in: k itself, but a name this package or the server
// owns (the Plba-Task that did not decode, the Nats-Msg-Id, ...) under
// foreignPrefix, and a name that is not a valid header name (empty, or
// with a blank, a control byte, ':' or a byte above 0x7e) with those
// bytes and '%' written as %XX.
func foreignName(k string) string {
	if !validHeaderName(k) {
		b := make([]byte, 0, len(k)+8)
		for i := 0; i < len(k); i++ {
			c := k[i]
			if c <= ' ' || c == ':' || c == '%' || c >= 0x7f {
				b = append(b, '%', hexDigits[c>>4], hexDigits[c&0xf])
				continue
			}
			b = append(b, c)
		}
		k = string(b)
		if k == "" {
			k = "%"
		}
	}
	if reserved(k) {
		k = foreignPrefix + k
	}
	return k
}
