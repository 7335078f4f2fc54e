package postgres

import (
	"errors"
	"strings"
)

// connSettings reads the settings of a connection string as pgx (and
// libpq) does, without opening any file: a URL's query parameters
// (percent-decoded), or the keyword=value pairs (single-quoted values,
// backslash escapes); the last occurrence of a key wins. Of a URL's user
// information, hosts and database only the password is returned (the
// others name no file).
func connSettings(s string) (map[string]string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, errors.New("NUL byte")
	}
	p, ok := strings.CutPrefix(s, "postgresql://")
	if !ok {
		p, ok = strings.CutPrefix(s, "postgres://")
	}
	if ok {
		return urlSettings(p)
	}
	return keywordSettings(s)
}

// urlSettings reads the query parameters of a URL without its scheme.
func urlSettings(p string) (map[string]string, error) {
	settings := map[string]string{}
	if i := strings.IndexAny(p, "@/"); i >= 0 && p[i] == '@' {
		// Only the password matters here: with one, pgx reads no passfile.
		if _, pw, _ := strings.Cut(p[:i], ":"); pw != "" {
			v, err := uriDecode(pw)
			if err != nil {
				return nil, err
			}
			settings["password"] = v
		}
		p = p[i+1:]
	}
	for { // hosts and ports
		if strings.HasPrefix(p, "[") {
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return nil, errors.New("unterminated IPv6 host")
			}
			p = p[end+1:]
		} else {
			p = p[indexOrLen(p, ":/?,"):]
		}
		if strings.HasPrefix(p, ":") {
			p = p[1:]
			p = p[indexOrLen(p, "/?,"):]
		}
		if !strings.HasPrefix(p, ",") {
			break
		}
		p = p[1:]
	}
	if strings.HasPrefix(p, "/") {
		i := strings.IndexByte(p, '?')
		if i < 0 {
			return settings, nil
		}
		p = p[i:]
	}
	if !strings.HasPrefix(p, "?") {
		return settings, nil
	}
	for params := p[1:]; params != ""; {
		pair := params
		if i := strings.IndexByte(params, '&'); i >= 0 {
			pair, params = params[:i], params[i+1:]
		} else {
			params = ""
		}
		rawKey, rawValue, found := strings.Cut(pair, "=")
		if !found || strings.IndexByte(rawValue, '=') >= 0 {
			return nil, errors.New("malformed query parameter")
		}
		key, err := uriDecode(rawKey)
		if err != nil {
			return nil, err
		}
		value, err := uriDecode(rawValue)
		if err != nil {
			return nil, err
		}
		settings[canonicalKey(key)] = value
	}
	return settings, nil
}

func indexOrLen(s, chars string) int {
	if i := strings.IndexAny(s, chars); i >= 0 {
		return i
	}
	return len(s)
}

// uriDecode percent-decodes a URI component as libpq does: leading and
// trailing spaces skipped, inner ones refused, %00 refused.
func uriDecode(raw string) (string, error) {
	raw = strings.Trim(raw, " ")
	if strings.IndexByte(raw, ' ') >= 0 {
		return "", errors.New("space in a URI component")
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		if raw[i] != '%' {
			b.WriteByte(raw[i])
			continue
		}
		if i+2 >= len(raw) {
			return "", errors.New("bad percent-encoding")
		}
		hi, ok1 := hexDigit(raw[i+1])
		lo, ok2 := hexDigit(raw[i+2])
		if !ok1 || !ok2 || hi<<4|lo == 0 {
			return "", errors.New("bad percent-encoding")
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

const spaces = " \t\n\r\v\f"

// keywordSettings reads "key=value key='quoted value'" pairs.
func keywordSettings(s string) (map[string]string, error) {
	settings := map[string]string{}
	s = strings.TrimLeft(s, spaces)
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, errors.New("missing =")
		}
		key := strings.Trim(s[:eq], spaces)
		if key == "" || strings.ContainsAny(key, spaces) {
			return nil, errors.New("bad keyword")
		}
		s = strings.TrimLeft(s[eq+1:], spaces)
		var val string
		switch {
		case s == "":
		case s[0] != '\'':
			end := 0
			for ; end < len(s) && !strings.ContainsRune(spaces, rune(s[end])); end++ {
				if s[end] == '\\' {
					end++
					if end == len(s) {
						break
					}
				}
			}
			val, s = unescape(s[:end]), strings.TrimLeft(s[end:], spaces)
		default:
			s = s[1:]
			end := 0
			for ; end < len(s) && s[end] != '\''; end++ {
				if s[end] == '\\' {
					end++
				}
			}
			if end >= len(s) {
				return nil, errors.New("unterminated quoted string")
			}
			val, s = unescape(s[:end]), strings.TrimLeft(s[end+1:], spaces)
		}
		settings[canonicalKey(key)] = val
	}
	return settings, nil
}

// unescape drops each backslash and keeps what follows it.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				break
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// canonicalKey is pgx's name for a connection setting.
func canonicalKey(k string) string {
	if k == "dbname" {
		return "database"
	}
	return k
}
