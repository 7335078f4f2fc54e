package config

import (
	"errors"
	"reflect"
	"slices"
	"strings"
)

// ErrUnknownSection is returned by (*Config).Decode for a section name that
// no package declared.
var ErrUnknownSection = errors.New("config: unknown section")

// Problem is one thing wrong with the configuration: where the offending
// value came from, the full key path and what is wrong with it.
type Problem struct {
	// Source names where the value came from: a file path, "env PLBA_X__Y",
	// "--set x.y=...", or "default". Empty inside Validate methods; Load
	// fills it in.
	Source string
	// Key is the dotted key path ("workers.default.concurrency"). Inside a
	// Validate method it is relative to the value being validated; Load
	// prefixes it. Empty when the problem is about a whole source (an
	// unreadable file, a malformed --set).
	Key string
	// Msg says what is wrong, for a human.
	Msg string
}

// Error formats the problem as "source: key: msg", leaving out empty parts.
func (p Problem) Error() string {
	var b strings.Builder
	for _, s := range []string{p.Source, p.Key} {
		if s != "" {
			b.WriteString(s)
			b.WriteString(": ")
		}
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is the configuration error: every problem found, reported at once.
// Load, Decode and Section return it; use errors.As to get at the list.
type Error struct {
	Problems []Problem
}

// Error returns one line per problem.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Invalid returns a single problem for a Validate method: key is relative
// to the validated value ("" for the value itself), the message is
// formatted with fmt.Sprintf. Join several with errors.Join or collect them
// with Problems.
func Invalid(key, format string, args ...any) error {
	return Problem{Key: key, Msg: sprintf(format, args...)}
}

// InvalidAs is Invalid for a package whose callers branch on its own
// sentinel error: the result reads "<sentinel>: key: message", matches
// sentinel with errors.Is, and still lands on its key when a section's
// Validate returns it.
func InvalidAs(sentinel error, key, format string, args ...any) error {
	return sentinelProblem{sentinel: sentinel, p: Problem{Key: key, Msg: sprintf(format, args...)}}
}

type sentinelProblem struct {
	sentinel error
	p        Problem
}

func (e sentinelProblem) Error() string        { return e.sentinel.Error() + ": " + e.p.Error() }
func (e sentinelProblem) Is(target error) bool { return target == e.sentinel }
func (e sentinelProblem) Unwrap() error        { return e.p }

// Problems collects the problems a Validate method finds:
//
//	var ps config.Problems
//	if c.Concurrency < 1 {
//		ps.Add("concurrency", "must be at least 1 (got %d)", c.Concurrency)
//	}
//	return ps.Err()
type Problems []Problem

// Add records a problem at key (relative to the validated value).
func (ps *Problems) Add(key, format string, args ...any) {
	*ps = append(*ps, Problem{Key: key, Msg: sprintf(format, args...)})
}

// Err returns nil when nothing was added, else an *Error holding the
// problems.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return &Error{Problems: append([]Problem(nil), ps...)}
}

// Validator is implemented by section structs (and any value inside them)
// that check themselves after decoding. Return nil, an Invalid or
// InvalidAs problem, a Problems.Err(), an errors.Join of those, or any
// other error: a plain
// error whose text starts with "field: " (or "field: subfield: ") naming
// fields of the value is reported at that key path, anything else at the
// validated value's own key.
type Validator interface {
	Validate() error
}

// appendErr flattens err (from a Validate method) into problems whose keys
// are prefixed with path.
func appendErr(dst []Problem, path string, err error) []Problem {
	switch e := err.(type) {
	case nil:
		return dst
	case Problem:
		return append(dst, Problem{Key: joinKey(path, e.Key), Msg: e.Msg})
	case *Problem:
		return append(dst, Problem{Key: joinKey(path, e.Key), Msg: e.Msg})
	case *Error:
		for _, p := range e.Problems {
			dst = append(dst, Problem{Key: joinKey(path, p.Key), Msg: p.Msg})
		}
		return dst
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			dst = appendErr(dst, path, inner)
		}
		return dst
	default:
		// A package's own error type that wraps a Problem (to keep its
		// sentinel for errors.Is) still lands on its key.
		var p Problem
		if errors.As(err, &p) {
			return append(dst, Problem{Key: joinKey(path, p.Key), Msg: p.Msg})
		}
		return append(dst, Problem{Key: path, Msg: err.Error()})
	}
}

// refineKey turns a plain error from a Validate method that follows the
// "key: problem" convention ("start_timeout: must be positive") into a
// problem at that key, as long as each leading "key: " names a field (or
// map entry) of the validated value v, at any depth ("orders.concurrency:
// must be at least 1" from a map's Validate). Anything else stays as it
// is.
func refineKey(p Problem, v reflect.Value) Problem {
	msg := p.Msg
	for {
		tok, rest, ok := strings.Cut(msg, ": ")
		if !ok || rest == "" {
			return p
		}
		if v, ok = walkKey(v, tok); !ok {
			return p
		}
		p.Key, p.Msg, msg = joinKey(p.Key, tok), rest, rest
	}
}

// walkKey follows the dotted key path from v through struct fields and
// string-keyed map entries (whose names may contain dots: the longest
// entry that matches wins); ok is false when a part names nothing.
func walkKey(v reflect.Value, path string) (reflect.Value, bool) {
	for path != "" {
		for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
			if v.IsNil() {
				return v, false
			}
			v = v.Elem()
		}
		var part string
		switch v.Kind() {
		case reflect.Struct:
			part, path, _ = strings.Cut(path, ".")
			i := slices.IndexFunc(fieldsOf(v.Type()), func(f field) bool { return f.key == part })
			if i < 0 {
				return v, false
			}
			v = v.FieldByIndex(fieldsOf(v.Type())[i].index)
		case reflect.Map:
			if v.Type().Key().Kind() != reflect.String {
				return v, false
			}
			var e reflect.Value
			for _, k := range v.MapKeys() {
				name := k.String()
				if (path == name || strings.HasPrefix(path, name+".")) && len(name) >= len(part) {
					part, e = name, v.MapIndex(k)
				}
			}
			if !e.IsValid() {
				return v, false
			}
			v, path = e, strings.TrimPrefix(strings.TrimPrefix(path, part), ".")
		default:
			return v, false
		}
	}
	return v, true
}

func joinKey(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case strings.HasPrefix(b, "["):
		return a + b
	default:
		return a + "." + b
	}
}

func dedupe(ps []Problem) []Problem {
	seen := map[Problem]bool{}
	out := ps[:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
