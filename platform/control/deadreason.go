package control

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// reasons returns the reason of each id that a dead-letter action left a
// dead letter, from err, what the backend answered: the part of err (the
// errors it joined) that names the id, as a backend names each dead
// letter it left for a reason of its own; else the last part (why the
// backend stopped), or err itself when it is one error. Each id so gets
// its own reason, not every id's: an answer as large as the square of
// the ids it fails.
func reasons(err error) func(id string) string {
	const still = "still a dead letter after the action"
	if err == nil {
		return func(string) string { return still }
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok || len(j.Unwrap()) < 2 {
		s := err.Error()
		return func(string) string { return s }
	}
	var parts []string
	for _, e := range j.Unwrap() {
		if e != nil {
			parts = append(parts, e.Error())
		}
	}
	last := still + ": " + parts[len(parts)-1]
	return func(id string) string {
		for _, p := range parts {
			if names(p, id) {
				return p
			}
		}
		return last
	}
}

// names reports whether text holds id as a word of its own: not within a
// longer id (id "a1" in "a12").
func names(text, id string) bool {
	if id == "" {
		return false
	}
	for i := 0; ; {
		k := strings.Index(text[i:], id)
		if k < 0 {
			return false
		}
		start, end := i+k, i+k+len(id)
		before, _ := utf8.DecodeLastRuneInString(text[:start])
		after, _ := utf8.DecodeRuneInString(text[end:])
		if !idRune(before) && !idRune(after) {
			return true
		}
		i = start + 1
	}
}

// idRune reports whether r may continue an id.
func idRune(r rune) bool {
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_' || r == '.')
}
