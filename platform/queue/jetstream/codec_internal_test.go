package jetstream

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// wire sends h through the NATS header block and back, as a delivery
// reads it (nats.go drops the blanks that begin a value, for one).
func wire(t testing.TB, h nats.Header) nats.Header {
	t.Helper()
	var sb strings.Builder
	sb.WriteString("NATS/1.0\r\n")
	for k, vs := range h {
		for _, v := range vs {
			sb.WriteString(k + ": " + v + "\r\n")
		}
	}
	sb.WriteString("\r\n")
	out, err := nats.DecodeHeadersMsg([]byte(sb.String()))
	require.NoError(t, err)
	return out
}

// Every task checkTask admits comes back from its message as it was: odd
// bytes in kind, id and key, NotBefore, the attempts of a Release, its
// headers, and whether its key was generated; the message has one
// header for the task's fields (and its traceparent, unless it holds a
// byte to escape inside), one per other Task.Headers entry and the Nats-Msg-Id.
func TestTaskHeaderRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 4, 14, 59, 0, 123456789, time.FixedZone("x", 3600))
	odd := " lead % 100%25 a=b\ttab\x01\x7f é  trail "
	cases := []struct {
		name string
		t    task.Task
		spec msgSpec
	}{
		{"keyless", task.Task{ID: "0af3", Key: "0af3", Kind: "noop"}, msgSpec{msgID: "0af3"}},
		{"keyed by id", task.Task{ID: "order 7", Key: "order 7", Kind: "invoice.send"}, msgSpec{msgID: "order 7", keyed: true}},
		{"key apart", task.Task{ID: "i-1", Key: "k 1", Kind: "k"}, msgSpec{msgID: "k 1", keyed: true}},
		{"odd bytes", task.Task{ID: odd, Key: odd + "k", Kind: odd + "kind"}, msgSpec{msgID: odd + "k", keyed: true}},
		{"odd id is the msg id", task.Task{ID: odd, Key: odd, Kind: "k"}, msgSpec{msgID: odd, keyed: true}},
		{"producer's key written as an id", task.Task{ID: "i-2", Key: "0123456789abcdef0123456789abcdef", Kind: "k"}, msgSpec{msgID: "0123456789abcdef0123456789abcdef", keyed: true}},
		{"producer's id written as an id", task.Task{ID: "0123456789abcdef0123456789abcdef", Key: "0123456789abcdef0123456789abcdef", Kind: "k"}, msgSpec{msgID: "0123456789abcdef0123456789abcdef", keyed: true}},
		{"generated", task.Task{ID: "0123456789abcdef0123456789abcdef", Key: "0123456789abcdef0123456789abcdef", Kind: "k"}, msgSpec{msgID: "0123456789abcdef0123456789abcdef"}},
		{"release", task.Task{ID: "i", Key: "i", Kind: "k", NotBefore: at.Add(time.Hour)}, msgSpec{msgID: "i-release-9", keyed: true, attempts: 3}},
		{"schedule", task.Task{ID: "s", Key: "s", Kind: "k", NotBefore: at}, msgSpec{msgID: "s", keepID: true}},
		{"no msg id", task.Task{ID: "n", Key: "n", Kind: "k"}, msgSpec{keyed: true}},
		{"stand-in without key", task.Task{ID: "seq-2", Kind: "?"}, msgSpec{msgID: "dead-PLBA_Q_q-2"}},
		{"headers", task.Task{ID: "h", Key: "h", Kind: "k", Headers: map[string]string{
			"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "a": "1", "b": "2", "c": "3"}},
			msgSpec{msgID: "h", keyed: true}},
		{"odd traceparent", task.Task{ID: "h", Key: "h", Kind: "k", Headers: map[string]string{"traceparent": "00-" + odd + "-01"}},
			msgSpec{msgID: "h", keyed: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.t
			in.Queue, in.Payload, in.EnqueuedAt = "q", []byte("p"), at
			c.spec.subject = "s"
			if !copyShape(c.spec.msgID) {
				c.spec.msgID = msgIDOf(c.spec.msgID, !c.spec.keyed) // as every caller writes it
			}
			m := encodeTask(&in, c.spec)
			want := len(in.Headers) + 1
			if c.spec.msgID != "" {
				want++
			}
			if traceField(&in) != "" {
				want-- // a field of Plba-Task
				require.NotContains(t, m.Header, hdrTraceparent)
			}
			require.Len(t, m.Header, want)
			v := m.Header.Get(HeaderTask)
			require.NotContains(t, v, "  ", v)
			require.True(t, validHeaderValue(v), v)
			require.True(t, strings.HasPrefix(v, "kind="), v)

			h := wire(t, m.Header)
			if c.spec.keepID {
				delete(h, hdrMsgID) // a schedule's message has none
			}
			got, keyed, err := decodeTask(h, m.Data, "q")
			require.NoError(t, err, v)
			require.Equal(t, c.spec.keyed, keyed)
			require.Equal(t, in.ID, got.ID)
			if in.Key == "" {
				in.Key = in.ID // the key is the id unless set
			}
			require.Equal(t, in.Key, got.Key)
			require.Equal(t, in.Kind, got.Kind)
			require.Equal(t, "q", got.Queue)
			require.Equal(t, []byte("p"), got.Payload)
			require.True(t, at.Equal(got.EnqueuedAt), got.EnqueuedAt)
			require.True(t, in.NotBefore.Equal(got.NotBefore), got.NotBefore)
			require.Equal(t, c.spec.attempts, got.Attempt)
			if len(in.Headers) == 0 {
				require.Nil(t, got.Headers)
			} else {
				require.Equal(t, in.Headers, got.Headers)
			}
		})
	}
}

// A keyless task's message reads well in the nats CLI.
func TestTaskHeaderIsReadable(t *testing.T) {
	tk := &task.Task{ID: "0af3", Key: "0af3", Kind: "invoice.send", EnqueuedAt: time.Date(2026, 12, 4, 14, 59, 0, 5, time.UTC)}
	m := encodeTask(tk, msgSpec{subject: "s", msgID: tk.ID})
	require.Equal(t, "kind=invoice.send at=2026-12-04T14:59:00.000000005Z key-generated", m.Header.Get(HeaderTask))
	require.Equal(t, "0af3", m.Header.Get(hdrMsgID))
}

// Messages stored by earlier versions, one header per field, still
// decode; a message without the generated-key mark (as every one from
// before the mark) is keyed.
func TestOldFormatDecodes(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	old := nats.Header{
		HeaderKind:       {"k"},
		HeaderID:         {"the id"},
		HeaderKey:        {"the key"},
		HeaderEnqueuedAt: {formatTime(at)},
		HeaderNotBefore:  {formatTime(at.Add(time.Minute))},
		HeaderAttempts:   {"2"},
		hdrMsgID:         {"the key-release-4"},
		"traceparent":    {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
	}
	got, keyed, err := decodeTask(wire(t, old), []byte("p"), "q")
	require.NoError(t, err)
	require.True(t, keyed)
	require.Equal(t, task.Task{ID: "the id", Key: "the key", Kind: "k", Queue: "q", Payload: []byte("p"), Attempt: 2,
		EnqueuedAt: at, NotBefore: at.Add(time.Minute),
		Headers: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}, *got)

	// Before Plba-Task-Id was left out: only the Nats-Msg-Id names it.
	short := nats.Header{HeaderKind: {"k"}, HeaderEnqueuedAt: {formatTime(at)}, hdrMsgID: {"id-1"}}
	got, keyed, err = decodeTask(wire(t, short), nil, "q")
	require.NoError(t, err)
	require.True(t, keyed, "no mark: remembered, as then")
	require.Equal(t, "id-1", got.ID)
	require.Equal(t, "id-1", got.Key)

	short[hdrKeyGenerated] = []string{"1"}
	got, keyed, err = decodeTask(wire(t, short), nil, "q")
	require.NoError(t, err)
	require.False(t, keyed, "the old generated-key mark")
	require.Equal(t, "id-1", got.ID)

	// A dead letter stored in the old form.
	dead := nats.Header{HeaderKind: {"k"}, hdrMsgID: {"dead-PLBA_Q_q-7"}, HeaderID: {"i"},
		HeaderDeadReason: {"boom"}, HeaderDeadAt: {formatTime(at)}, HeaderDeadAttempts: {"5"}}
	dl, err := decodeDead(wire(t, dead), nil, "q")
	require.NoError(t, err)
	require.Equal(t, "i", dl.Task.ID)
	require.Equal(t, "boom", dl.Reason)
	require.True(t, at.Equal(dl.At))
	require.Equal(t, 5, dl.Task.Attempt)
}

// A dead-letter copy carries the task in HeaderTask and its reason, time
// and attempts in the Plba-Dead- headers; it decodes whole.
func TestDeadLetterRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	tk := &task.Task{ID: "i d", Key: "k", Kind: "k", EnqueuedAt: at, Headers: map[string]string{"x": "y"}}
	m := encodeDead(tk, "dead.q", deadMsgID("PLBA_Q_q", 7), false, deadInfo{reason: "line\nbreak", at: at, attempts: 4})
	dl, err := decodeDead(wire(t, m.Header), nil, "q")
	require.NoError(t, err)
	require.Equal(t, "i d", dl.Task.ID)
	require.Equal(t, "k", dl.Task.Key)
	require.Equal(t, map[string]string{"x": "y"}, dl.Task.Headers)
	require.Equal(t, "line break", dl.Reason)
	require.Equal(t, 4, dl.Task.Attempt)
	require.True(t, at.Equal(dl.At))
	_, keyed, err := decodeTask(wire(t, m.Header), nil, "q")
	require.NoError(t, err)
	require.False(t, keyed)
}

// A malformed HeaderTask makes the message undecodable (the poison path),
// with the reason; nothing panics.
func TestMalformedTaskHeader(t *testing.T) {
	for _, c := range []struct{ v, reason string }{
		{"", "empty"},
		{"id=x", "no kind"},
		{"kind=", "empty value"},
		{"kind=k  at=2026-01-02T03:04:05Z", "empty field"},
		{"kind=k ", "empty field"},
		{" kind=k", "empty field"},
		{"kind=k kind=j", "given twice"},
		{"kind=k key-generated key-generated", "given twice"},
		{"kind=k frob", `unknown flag "frob"`},
		{"kind=k =v", "without a name"},
		{"kind=%4", "truncated escape"},
		{"kind=%", "truncated escape"},
		{"kind=%zz", `bad escape "%zz"`},
		{"kind=a%0Ab", "line break"},
		{"kind=a\tb", "raw byte"},
		{"kind=k at=yesterday", "field at"},
		{"kind=k not-before=2026-13-01T00:00:00Z", "field not-before"},
		{"kind=k attempts=-1", "-1 is outside 0 to 2147483647"},
		{"kind=k attempts=2147483648", "2147483648 is outside 0 to 2147483647"},
		{"kind=k attempts=x", "field attempts"},
	} {
		h := nats.Header{HeaderTask: {c.v}, hdrMsgID: {"m"}}
		_, _, err := decodeTask(h, nil, "q")
		require.Error(t, err, "%q", c.v)
		require.True(t, errors.Is(err, errUndecodable), "%q: %v", c.v, err)
		require.Contains(t, err.Error(), c.reason, "%q", c.v)
	}
	// A field of a later version is skipped.
	got, keyed, err := decodeTask(nats.Header{HeaderTask: {"kind=k future=1 key-generated"}, hdrMsgID: {"m"}}, nil, "q")
	require.NoError(t, err)
	require.False(t, keyed)
	require.Equal(t, "k", got.Kind)
}

// A message with both forms of a task's fields (Plba-Task and one of the
// earlier headers, as only someone else writes it) is undecodable, every
// time: it used to decode to the one the header map's order put last, a
// task whose kind or id could change from one delivery to the next.
func TestBothFormsOfTaskHeaderAreUndecodable(t *testing.T) {
	for _, legacy := range []string{HeaderKind, HeaderID, HeaderKey, HeaderEnqueuedAt, HeaderNotBefore, HeaderAttempts, hdrKeyGenerated} {
		v := map[string]string{HeaderKind: "b", HeaderID: "i", HeaderKey: "y", HeaderEnqueuedAt: "2026-01-02T03:04:05Z",
			HeaderNotBefore: "2026-01-02T03:04:05Z", HeaderAttempts: "1", hdrKeyGenerated: "1"}[legacy]
		h := nats.Header{HeaderTask: {"kind=a id=x key=z"}, legacy: {v}, hdrMsgID: {"m"}}
		for range 20 { // map order varies
			_, _, err := decodeTask(h, nil, "q")
			require.ErrorIs(t, err, errUndecodable, legacy)
			require.ErrorContains(t, err, "both Plba-Task and "+legacy, legacy)
		}
	}
}

// The traceparent travels in Plba-Task; one in a header of its own (as
// earlier versions and other publishers write it) is read as well, and a
// message with both reads the field's, whatever the header map's order.
// One that Plba-Task does not carry (empty, with a line break that a
// client sent, or with another byte it would escape, not at an end)
// stays a header of its own. A bad traceparent field makes
// the message undecodable like any bad field.
func TestTraceparentField(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	got, _, err := decodeTask(wire(t, nats.Header{HeaderTask: {"kind=k"}, hdrMsgID: {"m"}, "traceparent": {tp}, "tracestate": {"a=b"}}), nil, "q")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"traceparent": tp, "tracestate": "a=b"}, got.Headers)

	both := nats.Header{HeaderTask: {"kind=k traceparent=" + tp}, hdrMsgID: {"m"}, "traceparent": {"00-other"}}
	for range 20 { // map order varies
		got, _, err := decodeTask(both, nil, "q")
		require.NoError(t, err)
		require.Equal(t, map[string]string{"traceparent": tp}, got.Headers)
	}

	for _, v := range []string{"", "a\rb", "a b", "a%b"} {
		tk := &task.Task{ID: "i", Key: "i", Kind: "k", Headers: map[string]string{"traceparent": v}}
		m := encodeTask(tk, msgSpec{subject: "s", msgID: "i", keyed: true})
		require.Equal(t, []string{v}, m.Header[hdrTraceparent], "%q", v)
		require.NotContains(t, m.Header.Get(HeaderTask), "traceparent", "%q", v)
	}

	// A blank at an end, which a header would lose, is kept in the field.
	tk := &task.Task{ID: "i", Key: "i", Kind: "k", Headers: map[string]string{"traceparent": " a b"}}
	m := encodeTask(tk, msgSpec{subject: "s", msgID: "i", keyed: true})
	require.NotContains(t, m.Header, hdrTraceparent)
	got, _, err = decodeTask(wire(t, m.Header), nil, "q")
	require.NoError(t, err)
	require.Equal(t, tk.Headers, got.Headers)

	for _, c := range []struct{ v, reason string }{
		{"kind=k traceparent=", "empty value"},
		{"kind=k traceparent=a traceparent=a", "given twice"},
		{"kind=k traceparent=a%0Db", "line break"},
		{"kind=k traceparent=%zz", "bad escape"},
	} {
		_, _, err := decodeTask(nats.Header{HeaderTask: {c.v}, hdrMsgID: {"m"}}, nil, "q")
		require.ErrorIs(t, err, errUndecodable, c.v)
		require.ErrorContains(t, err, c.reason, c.v)
	}
}

// A message that an earlier version stored, with its traceparent in a
// header of its own, keeps its copies within what Enqueue left room for:
// a traceparent with bytes the field would escape (checkTask admits
// blanks, say) stays a header of its own, as it was stored, instead of
// growing by two bytes per such byte in Plba-Task. With 3,000 blanks,
// the dead-letter copy of a task stored at Enqueue's limit came to
// 67,036 bytes of a max_payload of 65,536 (its payload dropped, so it
// could not be re-driven), and its Release copy to 66,979 (refused: a
// negative ack that counts the attempt).
func TestTraceparentCopiesDoNotGrow(t *testing.T) {
	const limit = 64 << 10
	tp := "a" + strings.Repeat(" ", 3000) + "b"
	id := "0123456789abcdef0123456789abcdef" // a generated key's
	h := nats.Header{HeaderTask: {"kind=k key-generated"}, hdrMsgID: {id}, hdrTraceparent: {tp}}
	stored := &task.Task{ID: id, Key: id}
	data := make([]byte, limit-copyRoom(stored, msgSpec{msgID: id})-headerSize(h))
	tk, keyed, err := decodeTask(wire(t, h), data, "q")
	require.NoError(t, err)
	require.Equal(t, tp, tk.Headers[hdrTraceparent])
	dead := encodeDead(tk, "d", deadMsgID("PLBA_Q_q", 7), keyed, deadInfo{reason: strings.Repeat("r", maxReason), at: time.Now(), attempts: 3})
	require.LessOrEqual(t, msgSize(dead), int64(limit), "the dead-letter copy")
	release := encodeTask(tk, msgSpec{subject: "s", msgID: msgIDOf(tk.Key, !keyed) + "-release-9", keyed: keyed, attempts: 1})
	require.LessOrEqual(t, msgSize(release), int64(limit), "the Release copy")
	require.Equal(t, []string{tp}, release.Header[hdrTraceparent], "a header of its own, as stored")
	got, _, err := decodeTask(wire(t, release.Header), nil, "q")
	require.NoError(t, err)
	require.Equal(t, tp, got.Headers[hdrTraceparent])
}

// A message with Plba-Task twice is undecodable, like one with a field
// twice: which one is the task is anybody's guess. The first one used to
// be taken, the other dropped without a word.
func TestTaskHeaderGivenTwiceIsUndecodable(t *testing.T) {
	h, err := nats.DecodeHeadersMsg([]byte("NATS/1.0\r\nPlba-Task: kind=a\r\nPlba-Task: kind=b\r\nNats-Msg-Id: m\r\n\r\n"))
	require.NoError(t, err)
	_, _, err = decodeTask(h, nil, "q")
	require.ErrorIs(t, err, errUndecodable)
	require.ErrorContains(t, err, "Plba-Task given 2 times")
}

// Plba-Task is the package's: a task may not carry it among its headers,
// and a foreign message's copy does not pass it on.
func TestTaskHeaderIsReserved(t *testing.T) {
	for _, name := range []string{"Plba-Task", "plba-task", "PLBA-TASK"} {
		require.True(t, reserved(name), name)
		err := checkTask(&task.Task{Kind: "k", Queue: "q", Headers: map[string]string{name: "kind=x"}})
		require.Error(t, err, name)
	}
	require.False(t, reserved("Plba-Tasks"))
}

// FuzzTaskHeader: any HeaderTask value either fails to decode or decodes
// to fields that encode back to a value decoding to the same fields (a
// traceparent with a byte to escape inside goes back as a header of its
// own).
func FuzzTaskHeader(f *testing.F) {
	for _, s := range []string{"kind=k", "kind=a%20b id=%25 key=x at=2026-12-04T14:59:00.000000005Z attempts=3 key-generated",
		"kind=k not-before=2026-01-02T03:04:05Z", "kind=%0", "kind=k x=y",
		"kind=k key-generated traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "kind=k traceparent=a%20b traceparent=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		var a task.Task
		gen, tp, err := parseTaskHeader(v, &a)
		if err != nil {
			return
		}
		if tp != "" {
			a.Headers = map[string]string{hdrTraceparent: tp}
		}
		if a.ID == "" {
			a.ID = "msg"
		}
		if a.Key == "" {
			a.Key = a.ID
		}
		if !validHeaderValue(a.ID) || !validHeaderValue(a.Kind) || !validHeaderValue(a.Key) {
			t.Fatalf("%q decoded to a line break", v)
		}
		var b task.Task
		field := traceField(&a) // "": a header of its own
		gen2, tp2, err := parseTaskHeader(string(appendTaskHeader(nil, &a, true, !gen, a.Attempt, field)), &b)
		require.NoError(t, err)
		require.Equal(t, gen, gen2)
		if field == "" {
			tp = "" // a header of its own
		}
		require.Equal(t, tp, tp2)
		require.Equal(t, a.Kind, b.Kind)
		require.Equal(t, a.ID, b.ID)
		if b.Key == "" { // left out when it equals the id
			b.Key = b.ID
		}
		require.Equal(t, a.Key, b.Key)
		require.True(t, a.EnqueuedAt.Equal(b.EnqueuedAt))
		require.True(t, a.NotBefore.Equal(b.NotBefore))
		require.Equal(t, a.Attempt, b.Attempt)
	})
}

// The message of a keyless task with a trace context costs three
// allocations to build (the message with its header values and its
// Plba-Task text, the header map and its slots) and three to decode (the
// task, its header map and slots); the fields are substrings of the
// header. The message has two headers: Plba-Task (with the traceparent)
// and the Nats-Msg-Id.
func TestTaskCodecAllocations(t *testing.T) {
	tk := &task.Task{Kind: "noop", Queue: "q", Payload: make([]byte, 128),
		Headers: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	tk.Prepare(time.Now())
	spec := msgSpec{subject: "s", msgID: tk.Key, keyed: !tk.KeyGenerated()}
	m := encodeTask(tk, spec)
	require.LessOrEqual(t, testing.AllocsPerRun(200, func() { m = encodeTask(tk, spec) }), 3.0)
	h := wire(t, m.Header)
	require.Len(t, h, 2)
	require.LessOrEqual(t, testing.AllocsPerRun(200, func() { _, _, _ = decodeTask(h, m.Data, "q") }), 3.0)
}

// The Plba-Task text is written into the message's own allocation when
// it fits and beside it when it does not; both come back as written, and
// two messages built one after the other keep their own text.
func TestTaskHeaderTextInAndBesideTheMessage(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 123456789, time.UTC)
	short := &task.Task{ID: "a", Kind: "k", Key: "a", Queue: "q", EnqueuedAt: at}
	long := &task.Task{ID: "b", Kind: "k", Key: strings.Repeat("key with spaces ", 20), Queue: "q", EnqueuedAt: at}
	ms := encodeTask(short, msgSpec{subject: "s", msgID: short.ID, keyed: true})
	ml := encodeTask(long, msgSpec{subject: "s", msgID: long.ID, keyed: true})
	require.Less(t, len(ms.Header.Get(HeaderTask)), len(taskMsg{}.text))
	require.Greater(t, len(ml.Header.Get(HeaderTask)), len(taskMsg{}.text))
	for _, c := range []struct {
		want *task.Task
		m    *nats.Msg
	}{{short, ms}, {long, ml}} {
		got, keyed, err := decodeTask(wire(t, c.m.Header), c.m.Data, "q")
		require.NoError(t, err)
		require.True(t, keyed)
		require.Equal(t, c.want.ID, got.ID)
		require.Equal(t, c.want.Key, got.Key)
		require.Equal(t, c.want.Kind, got.Kind)
		require.True(t, c.want.EnqueuedAt.Equal(got.EnqueuedAt))
	}
	require.Equal(t, "kind=k at=2026-12-05T10:00:00.123456789Z", ms.Header.Get(HeaderTask))
}

// BenchmarkTaskDecode measures what every delivery pays for its headers:
// nats.go's parse of the header block and decodeTask, for a keyless task
// with a trace context, in the one-header form this package writes and
// in the one-header-per-field form of earlier versions.
func BenchmarkTaskDecode(b *testing.B) {
	tk := &task.Task{Kind: "noop", Queue: "q", Payload: make([]byte, 128),
		Headers: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	tk.Prepare(time.Now())
	old := nats.Header{
		"traceparent":    {tk.Headers["traceparent"]},
		HeaderKind:       {tk.Kind},
		hdrKeyGenerated:  {"1"},
		HeaderEnqueuedAt: {formatTime(tk.EnqueuedAt)},
		hdrMsgID:         {tk.ID},
	}
	for _, c := range []struct {
		name string
		h    nats.Header
	}{
		{"form=one-header", encodeTask(tk, msgSpec{subject: "s", msgID: tk.Key}).Header},
		{"form=header-per-field", old},
	} {
		var sb strings.Builder
		sb.WriteString("NATS/1.0\r\n")
		for k, vs := range c.h {
			sb.WriteString(k + ": " + vs[0] + "\r\n")
		}
		sb.WriteString("\r\n")
		block := []byte(sb.String())
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h, err := nats.DecodeHeadersMsg(block)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := decodeTask(h, tk.Payload, "q"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTaskEncode measures building a keyless task's message.
func BenchmarkTaskEncode(b *testing.B) {
	tk := &task.Task{Kind: "noop", Queue: "q", Payload: make([]byte, 128),
		Headers: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	tk.Prepare(time.Now())
	b.ReportAllocs()
	for b.Loop() {
		_ = encodeTask(tk, msgSpec{subject: "s", msgID: tk.Key})
	}
}

// BenchmarkTaskEncodeRecycled is BenchmarkTaskEncode as Enqueue encodes:
// a batch of messages (the peers harness hands over 5000 tasks at a
// time), recycled once acknowledged (taskMsg.recycle); "fresh" allocates
// every message, as before recycling. ns/op is per message, recycling
// included, and so is the collector's share of it.
func BenchmarkTaskEncodeRecycled(b *testing.B) {
	const batch = 5000
	tk := &task.Task{Kind: "noop", Queue: "q", Payload: make([]byte, 128),
		Headers: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	tk.Prepare(time.Now())
	for _, recycled := range []bool{false, true} {
		b.Run(map[bool]string{false: "fresh", true: "recycled"}[recycled], func(b *testing.B) {
			tms := make([]*taskMsg, 0, batch)
			b.ReportAllocs()
			for b.Loop() {
				tms = append(tms, encodeTaskMsg(tk, msgSpec{subject: "s", msgID: tk.Key}))
				if len(tms) == batch {
					for i, tm := range tms {
						if recycled {
							tm.recycle()
						}
						tms[i] = nil
					}
					tms = tms[:0]
				}
			}
		})
	}
}

// A time that the message cannot carry (RFC 3339 writes years 1 to 9999)
// is refused at Enqueue: stored, every delivery would fail to decode and
// the task would reach the dead letter as a nameless stand-in.
func TestTaskTimesOutsideRFC3339AreRefused(t *testing.T) {
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tk := range []*task.Task{
		{ID: "a", Kind: "k", Queue: "q", EnqueuedAt: far},
		{ID: "b", Kind: "k", Queue: "q", NotBefore: far},
		{ID: "c", Kind: "k", Queue: "q", NotBefore: time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC)},
	} {
		require.ErrorIs(t, checkTask(tk), queue.ErrInvalidTask, tk.ID)
	}
	require.NoError(t, checkTask(&task.Task{ID: "d", Kind: "k", Queue: "q", NotBefore: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}))
}

// TestMsgIDSpaces: generated keys, producers' keys and the ids of
// Release and redrive copies never share a Nats-Msg-Id. A producer's key
// written as a generated key (of any process), as a copy's id, as a
// hashed key's id, or with a blank at an end (which nats.go would trim)
// is hashed; others are their own id; within the producers' keys the
// mapping is one to one.
func TestMsgIDSpaces(t *testing.T) {
	gen := task.NewID()
	other := "0123456789abcdef" + gen[16:] // another process's id
	require.Equal(t, gen, msgIDOf(gen, true), "a generated key is its own id")
	hashed := msgIDOf(" abc", false)
	require.True(t, strings.HasPrefix(hashed, keyHashPrefix), hashed)
	keys := []string{
		gen, other, strings.ToUpper(gen), gen + "0", gen[:31],
		gen + releaseMark + "5", gen + redriveMark + "5", "order-1" + releaseMark + "12", gen + releaseMark, gen + releaseMark + "x",
		hashed, hashed + " ", " abc", "abc ", "abc", "\tabc", "Plba-Key-x", "Plba-Key:x", "plba-key-sha256:x",
		"order-1", "release-5", "-release-5", "a-b-c",
	}
	ids := map[string]string{}
	for _, k := range keys {
		id := msgIDOf(k, false)
		require.NotEmpty(t, id)
		if prev, ok := ids[id]; ok {
			t.Fatalf("keys %q and %q share the id %q", prev, k, id)
		}
		ids[id] = k
		require.False(t, generatedShape(id), "%q: the id %q is written as a generated key", k, id)
		require.False(t, copyShape(id), "%q: the id %q is written as a copy's", k, id)
		require.False(t, isBlank(id[0]) || isBlank(id[len(id)-1]), "%q: the id %q has a blank at an end", k, id)
	}
	for _, k := range []string{"order-1", "release-5", "a-b-c", "abc", gen + "0", strings.ToUpper(gen), gen + releaseMark + "x"} {
		require.Equal(t, k, msgIDOf(k, false), "a plain key is its own id")
	}
	for _, k := range []string{gen, other, gen + releaseMark + "5", gen + redriveMark + "5", "-release-5", hashed, "Plba-Key-x", " abc"} {
		require.NotEqual(t, k, msgIDOf(k, false), "%q is hashed", k)
	}
	// The copies of a generated key's task are not a producer's key's id.
	for _, k := range []string{gen + releaseMark + "5", gen + redriveMark + "5"} {
		_, ok := ids[k]
		require.False(t, ok, "%q is no producer's key's id", k)
	}
}

// A message of a producer's key written as a generated id, stored before
// such keys were hashed (its Nats-Msg-Id the key, its id left to it),
// decodes as it did: id and key the Nats-Msg-Id, keyed.
func TestStoredIDShapedKeyDecodes(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef"
	h := nats.Header{HeaderTask: {"kind=k at=2026-12-04T14:59:00Z"}, hdrMsgID: {id}}
	got, keyed, err := decodeTask(h, nil, "q")
	require.NoError(t, err)
	require.True(t, keyed)
	require.Equal(t, id, got.ID)
	require.Equal(t, id, got.Key)
	require.False(t, got.KeyGenerated())
}
