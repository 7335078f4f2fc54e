package jetstream

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/plba/plba/platform/task"
)

// The value of HeaderTask is one line of text, fields separated by single
// spaces, in this order:
//
//	kind=<kind> [id=<id>] [key=<key>] [at=<enqueued at>] [not-before=<time>] [attempts=<n>] [key-generated] [traceparent=<value>]
//
// for example
//
//	Plba-Task: kind=invoice.send at=2026-12-04T14:59:00.123456789Z key-generated traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01
//
//   - kind is the task's kind;
//   - id is left out when it equals the Nats-Msg-Id, key when it equals
//     the id (or is empty, as a foreign message's stand-in's);
//   - at (Task.EnqueuedAt) and not-before (Task.NotBefore) are RFC 3339
//     times in UTC with nanoseconds, left out when zero;
//   - attempts is the number of attempts the task used before a Release,
//     left out when 0 (a reader rejects one above math.MaxInt32);
//   - the flag key-generated says that task.Prepare generated the key
//     (task.KeyGenerated): it is not remembered once the task finished;
//   - traceparent is Task.Headers["traceparent"] unless it holds a byte
//     to escape inside (see traceField), which then has no NATS header
//     of its own: one header less to store, parse and decode on every
//     delivery.
//     A message with both (written by someone else) reads the field's; a
//     version before the field skips it (its deliveries start new
//     traces, and its copies of the task lose it).
//
// Kind, id and key may hold any byte but CR and LF (checkTask), and so
// may a traceparent field that another writer escaped: in a value, '%',
// the space, the other control bytes and DEL are written as %XX (two
// upper-case hex digits), so a field never holds a space and the line
// splits without ambiguity; everything else, UTF-8 included, is written
// as it is.
// A reader rejects a value that is empty, holds a raw control byte or a
// bad escape, a field given twice, an empty field, and an unknown flag; a
// name=value field it does not know is skipped, so a later version may
// add fields.

// Field names of HeaderTask.
const (
	fieldKind         = "kind"
	fieldID           = "id"
	fieldKey          = "key"
	fieldAt           = "at"
	fieldNotBefore    = "not-before"
	fieldAttempts     = "attempts"
	fieldTraceparent  = hdrTraceparent
	flagKeyGenerated  = "key-generated"
	taskHeaderTimeFmt = time.RFC3339Nano
)

// hdrTraceparent is the W3C trace context header, which a task's message
// carries as a field of HeaderTask (traceField).
const hdrTraceparent = "traceparent"

// traceField returns Task.Headers["traceparent"] when HeaderTask carries
// it (instead of a header of its own), else "": when it is set,
// holds no line break (a lone CR or LF, which a client may send in a
// header) and no other byte that the field would escape, as no W3C
// traceparent does. One with such bytes inside stays a header of its
// own, as versions before the field stored it: written as a field it
// would grow by two bytes per escaped byte, and the copies (Release, dead
// letter) of a message such a version stored at Enqueue's limit would no
// longer fit. One with a blank at either end goes in the field all the
// same: nats.go trims those from a header value, so no earlier version
// stored it in a header, and the field keeps it as it is.
func traceField(t *task.Task) string {
	v := t.Headers[hdrTraceparent]
	if v == "" || !validHeaderValue(v) {
		return ""
	}
	if isBlank(v[0]) || isBlank(v[len(v)-1]) {
		return v
	}
	for i := 0; i < len(v); i++ {
		if escaped(v[i]) {
			return ""
		}
	}
	return v
}

// appendTaskHeader appends the HeaderTask value of t to b: its id only
// when withID, its key when it differs from the id (and is set), the key-generated flag
// when !keyed, attempts when above 0, tp (the traceparent traceField puts
// in the field) when set.
func appendTaskHeader(b []byte, t *task.Task, withID, keyed bool, attempts int, tp string) []byte {
	b = append(b, fieldKind+"="...)
	b = appendEscaped(b, t.Kind)
	if withID {
		b = append(b, " "+fieldID+"="...)
		b = appendEscaped(b, t.ID)
	}
	if t.Key != "" && t.Key != t.ID {
		b = append(b, " "+fieldKey+"="...)
		b = appendEscaped(b, t.Key)
	}
	if !t.EnqueuedAt.IsZero() {
		b = append(b, " "+fieldAt+"="...)
		b = t.EnqueuedAt.UTC().AppendFormat(b, taskHeaderTimeFmt)
	}
	if !t.NotBefore.IsZero() {
		b = append(b, " "+fieldNotBefore+"="...)
		b = t.NotBefore.UTC().AppendFormat(b, taskHeaderTimeFmt)
	}
	if attempts > 0 {
		b = append(b, " "+fieldAttempts+"="...)
		b = strconv.AppendInt(b, int64(attempts), 10)
	}
	if !keyed {
		b = append(b, " "+flagKeyGenerated...)
	}
	if tp != "" {
		b = append(b, " "+fieldTraceparent+"="...)
		b = appendEscaped(b, tp)
	}
	return b
}

// escaped reports whether c is written as %XX in a HeaderTask value.
func escaped(c byte) bool { return c <= ' ' || c == '%' || c == 0x7f }

const hexDigits = "0123456789ABCDEF"

// appendEscaped appends s to b with the bytes escaped reports written as
// %XX.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !escaped(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

// parseTaskHeader reads a HeaderTask value into t's fields and reports
// whether it carries the key-generated flag, and its traceparent ("" for
// none: the caller puts it into t.Headers). Values are substrings of v
// unless they hold an escape.
func parseTaskHeader(v string, t *task.Task) (keyGenerated bool, traceparent string, err error) {
	if v == "" {
		return false, "", errors.New("empty")
	}
	var seen uint8
	once := func(bit uint8, name string) error {
		if seen&bit != 0 {
			return fmt.Errorf("field %s given twice", name)
		}
		seen |= bit
		return nil
	}
	for rest, more := v, true; more; {
		var f string
		f, rest, more = strings.Cut(rest, " ")
		if f == "" {
			return false, "", errors.New("empty field")
		}
		name, val, hasVal := strings.Cut(f, "=")
		if !hasVal {
			if name != flagKeyGenerated {
				return false, "", fmt.Errorf("unknown flag %q", clip(name))
			}
			if err := once(1<<0, name); err != nil {
				return false, "", err
			}
			keyGenerated = true
			continue
		}
		switch name {
		case fieldKind:
			err = once(1<<1, name)
			if err == nil {
				t.Kind, err = unescape(val)
			}
		case fieldID:
			err = once(1<<2, name)
			if err == nil {
				t.ID, err = unescape(val)
			}
		case fieldKey:
			err = once(1<<3, name)
			if err == nil {
				t.Key, err = unescape(val)
			}
		case fieldAt:
			err = once(1<<4, name)
			if err == nil {
				t.EnqueuedAt, err = parseTaskTime(val)
			}
		case fieldNotBefore:
			err = once(1<<5, name)
			if err == nil {
				t.NotBefore, err = parseTaskTime(val)
			}
		case fieldAttempts:
			err = once(1<<6, name)
			if err == nil {
				t.Attempt, err = strconv.Atoi(val) // the base; deliver adds this message's deliveries
				if err == nil && (t.Attempt < 0 || t.Attempt > maxAttemptsField) {
					err = fmt.Errorf("%d is outside 0 to %d", t.Attempt, maxAttemptsField)
				}
			}
		case fieldTraceparent:
			err = once(1<<7, name)
			if err == nil {
				traceparent, err = unescape(val)
			}
		case "":
			err = errors.New("field without a name")
		default:
			// A field of a later version: skipped.
		}
		if err != nil {
			return false, "", fmt.Errorf("field %s: %w", clip(name), err)
		}
	}
	if seen&(1<<1) == 0 {
		return false, "", errors.New("no kind")
	}
	return keyGenerated, traceparent, nil
}

// maxAttemptsField bounds the attempts a message may say it used before
// a Release: far beyond any attempt limit, and far enough below the
// largest int that adding a message's deliveries cannot overflow.
const maxAttemptsField = math.MaxInt32

// parseTaskTime reads a time of HeaderTask: RFC 3339, whose year in UTC
// is one that RFC 3339 can write again (a copy of the task, to the dead
// letter say, must decode too).
func parseTaskTime(v string) (time.Time, error) {
	at, err := time.Parse(taskHeaderTimeFmt, v)
	if err != nil {
		return time.Time{}, err
	}
	if y := at.UTC().Year(); y < 1 || y > 9999 {
		return time.Time{}, fmt.Errorf("year %d in UTC", y)
	}
	return at, nil
}

// unescape decodes a HeaderTask value written by appendEscaped. It returns
// s itself when s holds no escape.
func unescape(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty value")
	}
	esc := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			esc = true
		} else if escaped(c) {
			return "", fmt.Errorf("raw byte %#02x (it must be escaped)", c)
		}
	}
	if !esc {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("truncated escape")
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("bad escape %q", s[i:i+3])
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	if !validHeaderValue(string(b)) {
		return "", errors.New("escaped line break") // checkTask refuses them; a Release could not write it
	}
	return string(b), nil
}
