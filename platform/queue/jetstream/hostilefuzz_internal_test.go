package jetstream

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// FuzzMessageHeaders: any header block a message on a work stream may
// carry (written by anyone) either decodes to a task whose message, and
// whose dead-letter copy, decode back to the same task, or is not a task,
// and then its stand-in's dead-letter copy decodes, keeping the reason
// and every header. Nothing panics.
func FuzzMessageHeaders(f *testing.F) {
	for _, s := range []string{
		"Plba-Task: kind=k\r\nNats-Msg-Id: m",
		"Plba-Task: kind=a%20b id=%25 key=x at=2026-12-04T14:59:00.000000005Z attempts=3 key-generated\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"Plba-Task-Kind: k\r\nPlba-Task-Id: i\r\nPlba-Task-Attempts: 2\r\nPlba-Task-Key-Generated: 1",
		"Plba-Task: kind=k\r\nPlba-Task-Kind: j\r\nNats-Msg-Id: m",
		"Plba-Task: kind=k\r\nPlba-Task: kind=j\r\nX: 1\r\nX: 2\r\nNats-Msg-Id: m",
		"Plba-Task: kind=%zz\r\nplba-completion: imap",
		"Plba-Task: kind=k traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\ntraceparent: x\r\nNats-Msg-Id: m",
		"Nats-Msg-Id:  \r\nPlba-Task: kind=k not-before=9999-12-31T23:59:59.999999999Z",
		"Plba-Task: kind=k traceparent=%20a%20b\r\nNats-Msg-Id: m",
		"Plba-Task: kind=k traceparent=a%20b\r\nNats-Msg-Id: m",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, block string) {
		h, err := nats.DecodeHeadersMsg([]byte("NATS/1.0\r\n" + block + "\r\n\r\n"))
		if err != nil {
			return
		}
		at := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
		info := deadInfo{reason: "r", at: at, attempts: 2}
		tk, keyed, err := decodeTask(h, []byte("p"), "q")
		if err != nil {
			require.ErrorIs(t, err, errUndecodable)
			st := foreignStandIn("q", 7, h, []byte("p"), at)
			info.reason = err.Error()
			dl, err := decodeDead(wire(t, encodeDead(st, "d", "dead-s-7", false, info).Header), []byte("p"), "q")
			require.NoError(t, err, "the stand-in of %q", block)
			require.Equal(t, "seq-7", dl.Task.ID)
			require.Equal(t, "?", dl.Task.Kind)
			require.Equal(t, sanitizeValue(info.reason), dl.Reason)
			require.Equal(t, st.Headers, dl.Task.Headers, "%q", block)
			for k, vs := range h {
				if len(vs) > 0 {
					_, kept := dl.Task.Headers[foreignName(k)]
					require.True(t, kept, "header %q of %q", k, block)
				}
			}
			return
		}
		same := func(what string, got *task.Task, gotKeyed bool) {
			t.Helper()
			require.Equal(t, tk.ID, got.ID, what)
			require.Equal(t, tk.Kind, got.Kind, what)
			require.Equal(t, tk.Key, got.Key, what)
			require.True(t, tk.EnqueuedAt.Equal(got.EnqueuedAt), what)
			require.True(t, tk.NotBefore.Equal(got.NotBefore), what)
			require.Equal(t, len(tk.Headers), len(got.Headers), what)
			for k, v := range tk.Headers {
				require.Equal(t, v, got.Headers[k], "%s: header %q", what, k)
			}
			require.Equal(t, keyed, gotKeyed, what)
		}
		// A Release's copy: the attempts used travel with it.
		m := encodeTask(tk, msgSpec{subject: "s", msgID: msgIDOf(tk.Key, !keyed) + "-release-1", keyed: keyed, attempts: tk.Attempt})
		got, gotKeyed, err := decodeTask(wire(t, m.Header), m.Data, "q")
		require.NoError(t, err, "%q", block)
		same("released copy", got, gotKeyed)
		require.Equal(t, tk.Attempt, got.Attempt)
		// The dead-letter copy.
		dm := encodeDead(tk, "d", "dead-s-7", keyed, info)
		dl, err := decodeDead(wire(t, dm.Header), dm.Data, "q")
		require.NoError(t, err, "%q", block)
		_, dkeyed, err := decodeTask(wire(t, dm.Header), dm.Data, "q")
		require.NoError(t, err)
		same("dead letter", dl.Task, dkeyed)
		require.Equal(t, 2, dl.Task.Attempt)
		require.Equal(t, "r", dl.Reason)
	})
}

// A lone CR or LF that a client sent in the Nats-Msg-Id that names a
// task, or in a field of the earlier form, makes the message
// undecodable: no copy of the task could carry it (a Release's or the
// dead letter's would not decode). It used to decode, and its dead
// letter was undecodable in turn (found by FuzzMessageHeaders).
func TestLineBreakFromTheWireIsUndecodable(t *testing.T) {
	for _, block := range []string{
		"Plba-Task: kind=k\r\nNats-Msg-Id: a\rb",
		"Plba-Task-Kind: k\r\nNats-Msg-Id: \r",
		"Plba-Task-Kind: k\r\nPlba-Task-Id: a\rb",
		"Plba-Task-Kind: k\rj\r\nPlba-Task-Id: i",
		"Plba-Task-Kind: k\r\nPlba-Task-Id: i\r\nPlba-Task-Key: a\rb",
	} {
		h, err := nats.DecodeHeadersMsg([]byte("NATS/1.0\r\n" + block + "\r\n\r\n"))
		require.NoError(t, err)
		_, _, err = decodeTask(h, nil, "q")
		require.ErrorIs(t, err, errUndecodable, "%q", block)
		require.ErrorContains(t, err, "line break", "%q", block)
	}
}
