package config

import (
	"strconv"
	"strings"
)

// dottedName is the end of the problem of a map entry whose name had a
// "." in it (name, split into nested keys, quoted or not): the hint
// "quote it" would be wrong.
const dottedName = `is read as nested keys, quoted or not: a name here cannot contain "."`

// leafNames returns the names a mapping's leaves make with prefix, as
// written before the split ("source/mail" with {"eu": ...}:
// "source/mail.eu").
func leafNames(prefix string, m map[string]any) []string {
	var out []string
	for _, k := range sortedKeys(m) {
		if sub, ok := m[k].(map[string]any); ok && len(sub) > 0 {
			out = append(out, leafNames(prefix+"."+k, sub)...)
		} else {
			out = append(out, prefix+"."+k)
		}
	}
	return out
}

// quoteAll returns names quoted and joined with ", ".
func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
