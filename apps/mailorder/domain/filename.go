package domain

import (
	"bytes"
	"io"
	"mime"
	"strconv"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset" // registers charsets for RFC 2047 words and text bodies
)

// A file name tells an order attachment sent as application/octet-stream
// by its extension, so it is read however a mailer wrote it. The standard
// reader (mime.ParseMediaType) knows RFC 2231 in UTF-8 and US-ASCII only:
// it drops a name in ISO-8859-1 (or reads only the tail of one in
// continuations), and gives up on every parameter of a header holding a
// raw 8-bit byte outside quotes or a parameter given twice. What it cannot
// read is read here, leniently (so are the charset and the boundary of a
// Content-Type it gave up on); cleanText then replaces what is not text.

// lenientCharsetReader converts from charset cs like charset.Reader, and
// passes the bytes of a charset it does not know through as they are.
func lenientCharsetReader(cs string, r io.Reader) (io.Reader, error) {
	if cr, err := charset.Reader(cs, r); err == nil {
		return cr, nil
	}
	return r, nil
}

// lenientWords decodes RFC 2047 words in any charset (see
// lenientCharsetReader).
var lenientWords = mime.WordDecoder{CharsetReader: lenientCharsetReader}

// fileName returns the file name of a part with header h: the filename
// parameter of its Content-Disposition (dparams as parsed), else the name
// parameter of its Content-Type (params as parsed). A parameter in RFC
// 2231's extended form is read here (in any charset); a plain one as
// parsed, or here when the parse did not yield it.
func fileName(h message.Header, dparams, params map[string]string) string {
	for _, p := range []struct {
		header, param string
		parsed        map[string]string
	}{{"Content-Disposition", "filename", dparams}, {"Content-Type", "name", params}} {
		name, extended := lenientParam(h.Get(p.header), p.param)
		switch {
		case name != "" && extended:
			return name
		case p.parsed[p.param] != "":
			return p.parsed[p.param]
		case name != "":
			return name
		}
	}
	return ""
}

// lenientParam returns the value of parameter name in header value v
// and whether it was written in RFC 2231's extended form (name*, or
// continuations name*0, name*1*, ...). The first of a parameter given
// twice counts.
func lenientParam(v, name string) (value string, extended bool) {
	var (
		plain, ext       string
		hasPlain, hasExt bool
		pieces           = map[string]string{} // "0", "1*", ...: continuations
	)
	segs := splitParams(v)
	for _, seg := range segs[min(1, len(segs)):] { // the first is the type
		k, val, ok := strings.Cut(seg, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = unquote(strings.TrimSpace(val))
		switch {
		case k == name:
			if !hasPlain {
				plain, hasPlain = val, true
			}
		case k == name+"*":
			if !hasExt {
				ext, hasExt = val, true
			}
		case strings.HasPrefix(k, name+"*"):
			if _, dup := pieces[k[len(name)+1:]]; !dup {
				pieces[k[len(name)+1:]] = val
			}
		}
	}
	if hasExt {
		cs, text := splitExtended(ext)
		return convertCharset(cs, percentDecode(text)), true
	}
	var (
		buf bytes.Buffer
		cs  string
	)
	for n := 0; ; n++ {
		idx := strconv.Itoa(n)
		if val, ok := pieces[idx]; ok {
			buf.WriteString(val)
			continue
		}
		val, ok := pieces[idx+"*"]
		if !ok {
			if n > 0 {
				return convertCharset(cs, buf.Bytes()), true
			}
			break
		}
		if n == 0 {
			cs, val = splitExtended(val)
		}
		buf.Write(percentDecode(val))
	}
	return plain, false
}

// splitParams splits a header value at the semicolons outside quotes.
func splitParams(v string) []string {
	var (
		out     []string
		start   int
		quoted  bool
		escaped bool
	)
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case escaped:
			escaped = false
		case c == '\\' && quoted:
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == ';' && !quoted:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// unquote returns a quoted string's content without its backslash
// escapes, and anything else as it is.
func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' {
		return s
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// splitExtended splits an RFC 2231 extended value charset'language'text
// into its charset and text; without both quotes it is all text.
func splitExtended(v string) (cs, text string) {
	parts := strings.SplitN(v, "'", 3)
	if len(parts) != 3 {
		return "", v
	}
	return parts[0], parts[2]
}

// percentDecode decodes %XX escapes; a '%' not followed by two hex
// digits stays as it is.
func percentDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if hi, lo := unhex(s[i+1]), unhex(s[i+2]); hi|lo < 0x10 {
				out = append(out, hi<<4|lo)
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return out
}

// unhex returns the value of a hex digit, 0x10 for any other byte.
func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0x10
}

// convertCharset returns b, in charset cs, as a string: converted to
// UTF-8 when cs is a charset other than UTF-8 and US-ASCII that is
// known, as it is otherwise (cleanText replaces what is not UTF-8).
func convertCharset(cs string, b []byte) string {
	switch strings.ToLower(strings.TrimSpace(cs)) {
	case "", "utf-8", "utf8", "us-ascii":
		return string(b)
	}
	r, err := charset.Reader(cs, bytes.NewReader(b))
	if err != nil {
		return string(b)
	}
	conv, err := io.ReadAll(r)
	if err != nil {
		return string(b)
	}
	return string(conv)
}
