package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Text taken from a mail (its headers, file names, the strings of a JSON
// order) is stored and shown: every store must be able to keep it as
// text (PostgreSQL refuses bytes that are not UTF-8 and the NUL byte),
// and a status page or a log must show it without control sequences or
// text reordered by bidirectional overrides. So the text fields of a
// Mail, a Draft and an Order are valid UTF-8 without control characters
// (tab aside) and bidirectional overrides: whatever else a sender wrote
// there is replaced by U+FFFD and noted in the audit.

// cleanText returns s with every byte that is not UTF-8, every control
// character but tab and every bidirectional override (see unsafeRune)
// replaced by U+FFFD, and whether anything was replaced.
func cleanText(s string) (string, bool) {
	ok := utf8.ValidString(s)
	if ok {
		for _, r := range s {
			if unsafeRune(r) {
				ok = false
				break
			}
		}
	}
	if ok {
		return s, false
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || unsafeRune(r) {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String(), true
}

// CleanText returns s as the text of a Mail is kept and shown: every byte
// that is not UTF-8, every control character but tab and every
// bidirectional override replaced by U+FFFD. It is for text about a mail
// that did not come through ParseMail (a Message-ID the mailbox server
// reported).
func CleanText(s string) string {
	c, _ := cleanText(s)
	return c
}

// unsafeRune reports a C0 control character other than tab, DEL, a C1
// control character, or one of Unicode's bidirectional embeddings,
// overrides and isolates (U+202A to U+202E, U+2066 to U+2069), which
// reorder what a page or a log shows around them.
func unsafeRune(r rune) bool {
	return r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0 ||
		r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// cleanField cleans *s in place (see cleanText) and, when something was
// replaced, adds a note naming the field to notes.
func cleanField(field string, s *string, notes *[]string) {
	c, changed := cleanText(*s)
	if !changed {
		return
	}
	*s = c
	*notes = append(*notes, field+" held bytes that are not UTF-8 text, control characters or bidirectional overrides; they were replaced by U+FFFD")
}

// MaxMessageIDBytes is the longest Message-ID an order keeps as it is:
// the most a header line may hold (RFC 5322). A store indexes the
// Message-ID with the attachment's hash, and an index entry has a
// bound (PostgreSQL's is about 2.7 kB): a longer id is replaced by a
// synthetic one (see cleanMessageID).
const MaxMessageIDBytes = 998

// cleanMessageID returns id when it is clean text of at most
// MaxMessageIDBytes; otherwise a synthetic id derived from the SHA-256 of
// its bytes ("msgid-sha256-<hex>@mailorder.invalid") and a note.
// Replacing the bad bytes or cutting the id short would not do: the
// Message-ID is half of an order's identity, and two mails whose ids
// differ only in such bytes (or past the cut) would share their orders.
func cleanMessageID(id string, notes *[]string) string {
	_, changed := cleanText(id)
	if !changed && len(id) <= MaxMessageIDBytes {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	syn := "msgid-sha256-" + hex.EncodeToString(sum[:16]) + "@mailorder.invalid"
	if changed {
		*notes = append(*notes, fmt.Sprintf("Message-ID %q is not UTF-8 text without control characters and bidirectional overrides; using %s", clip(id), syn))
	} else {
		*notes = append(*notes, fmt.Sprintf("Message-ID %q is %d bytes long, more than %d; using %s", clip(id), len(id), MaxMessageIDBytes, syn))
	}
	return syn
}

// cleanSender returns addr, the sender's address, when it is clean text
// without U+FFFD; otherwise a synthetic address derived from the SHA-256
// of header, the From header's bytes
// ("sender-sha256-<hex>@mailorder.invalid"), and a note. Replacing the
// bad bytes would not do: the address is the order's customer and the
// recipient of its confirmation, and "j\xe9r\xf4me@…" and
// "j\xe8r\xf4me@…" (or an address with a real U+FFFD) would all read
// "j\ufffdr\ufffdme@…", one customer's orders filed under another's
// address. The order is kept: its lines were readable.
func cleanSender(addr, header string, notes *[]string) string {
	c, changed := cleanText(addr)
	if !changed && !strings.ContainsRune(addr, utf8.RuneError) {
		return addr
	}
	sum := sha256.Sum256([]byte(header))
	syn := "sender-sha256-" + hex.EncodeToString(sum[:16]) + "@mailorder.invalid"
	*notes = append(*notes, fmt.Sprintf("sender address %q is not readable text; using %s", clip(c), syn))
	return syn
}

// clip shortens s for a reason text.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
