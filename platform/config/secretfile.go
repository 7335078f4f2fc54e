package config

import (
	"reflect"
	"slices"
	"strings"
)

// secretPairs decides, for each string secret of struct out set both by
// its key and by its _file key (a file name that is not empty), which one
// counts. An empty secret (null, "") is one not given: the file counts,
// whichever layer set either (a compose file's PLBA_..._PASSWORD:
// ${PASSWORD:-} must not wipe out a config file's password_file), unless
// Options.Values set it (a section set as it is). A secret that is not
// empty and its file follow the layers: the later one counts; set by one
// source, they are a problem (one would be lost). It returns the keys to
// skip.
func (d *decoder) secretPairs(path string, m map[string]any, fs []field, out reflect.Value) map[string]bool {
	skip := map[string]bool{}
	for _, f := range fs {
		fileKey := f.key + "_file"
		name, _ := m[fileKey].(string)
		if t, ok := m[fileKey].(text); ok {
			name = string(t)
		}
		if _, ok := m[f.key]; !ok || !f.secret || name == "" || out.FieldByIndex(f.index).Kind() != reflect.String {
			continue
		}
		rv, rf := 0, 0
		if d.rank != nil {
			rv, rf = d.rank(joinKey(path, f.key)), d.rank(joinKey(path, fileKey))
		}
		asIs := d.valuesRank > 0 && rv >= d.valuesRank
		switch {
		case emptySecret(m[f.key]) && !asIs, rf > rv:
			// The secret was left empty, or the file's layer is later:
			// nothing is lost.
			skip[f.key] = true
		case rv > rf:
			skip[fileKey] = true
		default:
			skip[fileKey] = true
			d.add(joinKey(path, fileKey), "set beside %s in the same source: one would be lost; give one of them", f.key)
		}
	}
	return skip
}

// emptySecret reports whether a secret's own value is empty (null, "" in
// a file, the environment or --set).
func emptySecret(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case text:
		return x == ""
	}
	return false
}

// secretKey reports whether the dotted key names a string secret (a
// field tagged secret:"true") or its _file key, in the declared section
// that owns it: through structs, pointers and string-keyed maps (an
// entry of workers.<queue>).
func secretKey(secs []declared, key string) bool {
	owner := ownerOf(secs, key)
	i := slices.IndexFunc(secs, func(d declared) bool { return d.name == owner })
	if owner == "" || key == owner || i < 0 {
		return false
	}
	t := secs[i].typ
	parts := strings.Split(strings.TrimPrefix(key, owner+"."), ".")
	for n, part := range parts {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Map:
			if t.Key().Kind() != reflect.String {
				return false
			}
			t = t.Elem()
			continue
		case reflect.Struct:
		default:
			return false
		}
		last := n == len(parts)-1
		fs := fieldsOf(t)
		if f, ok := fieldByKey(fs, part); ok {
			ft := t.FieldByIndex(f.index).Type
			if last {
				return f.secret && ft.Kind() == reflect.String
			}
			t = ft
			continue
		}
		base, isFile := strings.CutSuffix(part, "_file")
		f, ok := fieldByKey(fs, base)
		return last && isFile && ok && f.secret && t.FieldByIndex(f.index).Type.Kind() == reflect.String
	}
	return false
}

// emptyText reports whether v is an empty string (from a file, the
// environment or --set).
func emptyText(v any) bool {
	s, ok := v.(string)
	if t, isText := v.(text); isText {
		s, ok = string(t), true
	}
	return ok && s == ""
}

// givenValue reports whether v, what an earlier layer set, is given: any
// value but null and the empty string (a YAML password: 12345678 is
// given, and a problem to report, not one a later empty value may hide).
func givenValue(v any) bool {
	return v != nil && !emptyText(v)
}

// kindName names a secret field's kind for a message.
func kindName(k reflect.Kind) string {
	if k == reflect.Map {
		return "a mapping"
	}
	return "a list"
}

// secretFile reads a secret from the file named by a <key>_file value; an
// empty name leaves the secret as it is. The file must be a regular file
// (or a link to one): a named pipe would block the read until a writer
// came, a device could feed it for ever.
func (d *decoder) secretFile(path string, in any, out reflect.Value) {
	if s, ok := in.(text); ok {
		in = string(s)
	}
	name, ok := in.(string)
	if !ok {
		d.add(path, "expected a file name, got %s", d.describe(in))
		return
	}
	if name == "" {
		return
	}
	if err := RegularFile(name); err != nil {
		d.add(path, "cannot read secret file: %v", err)
		return
	}
	read := d.readFile
	if read == nil {
		read = ReadFile
	}
	b, err := read(name)
	if err != nil {
		d.add(path, "cannot read secret file: %v", err)
		return
	}
	out.SetString(strings.TrimSpace(string(b)))
}
