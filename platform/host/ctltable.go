package host

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"
)

// tabw writes aligned tables for `ctl`. What it prints comes from the
// server and, through it, from outside (a mail's headers in a dead
// letter's key and reason): every cell and note goes through printable.
type tabw struct {
	out io.Writer
	tw  *tabwriter.Writer
}

func newTabw(out io.Writer) *tabw {
	return &tabw{out: out, tw: tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)}
}

// row writes one row of cells.
func (w *tabw) row(cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(w.tw, "\t")
		}
		fmt.Fprint(w.tw, printable(fmt.Sprint(c), false))
	}
	fmt.Fprintln(w.tw)
}

// note writes a line outside the table.
func (w *tabw) note(s string) {
	w.flush()
	fmt.Fprintln(w.out, printable(s, false))
}

func (w *tabw) flush() { _ = w.tw.Flush() }

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// printable returns s fit for a terminal: the control characters a
// terminal acts on (escape sequences that set its title, write the
// clipboard, move the cursor), bidirectional overrides that reorder what
// is shown, line and paragraph separators and bytes that are not UTF-8
// are written as Go escapes (\x1b, \u202e). With lines, newlines and tabs
// stay (a payload keeps its layout) and a carriage return before a
// newline is dropped; without, they are escaped as well, so that a value
// stays on its row of a table.
func printable(s string, lines bool) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unprintable(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case lines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case lines && r == '\r' && strings.HasPrefix(s[size:], "\n"):
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case unprintable(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unprintable(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		s = s[size:]
	}
	return b.String()
}

// unprintable reports whether printable escapes r: a control character
// (C0, DEL, C1), a bidirectional mark, embedding, override or isolate, or
// a line or paragraph separator.
func unprintable(r rune) bool {
	switch {
	case unicode.Is(unicode.Cc, r), unicode.In(r, unicode.Zl, unicode.Zp):
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
