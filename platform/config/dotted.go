package config

import (
	"strconv"
	"strings"
)

// dottedName is the end of the problem of a map entry whose name had a
// "." in it (name, split into nested keys, quoted or not): the hint
// "quote it" would be wrong.
const dottedName = `is read as nested keys, quoted or not: a name here cannot contain "."`

// dottedEntries returns m, an entry of a map of plain strings, with each
// nested mapping the loader made of a name with a "." in it taken back
// under that name as written ({"deployment": {"environment": {"name":
// "prod"}}}: "deployment.environment.name": "prod"). Such a map's values
// are strings, never mappings, so the split is undone without doubt: the
// attributes of an OpenTelemetry resource (telemetry.resource.attributes)
// or the headers of an exporter take dotted names. A map of another type
// (workers.<queue>, lifecycle.policies.<component>) keeps the problem
// dottedName says.
func dottedEntries(m map[string]any) map[string]any {
	nested := false
	for _, v := range m {
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			nested = true
			break
		}
	}
	if !nested {
		return m
	}
	out := make(map[string]any, len(m))
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			name := k
			if prefix != "" {
				name = prefix + "." + k
			}
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
				walk(name, sub)
				continue
			}
			out[name] = v
		}
	}
	walk("", m)
	return out
}

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
