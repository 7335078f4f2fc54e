package config

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// text is a value that came from the environment or --set: a string whose
// type is decided by the field it lands in ("4" is an int for an int
// field and a string for a string field).
type text string

// decoder turns a merged tree into Go values, strictly: every key must name
// a field, every value must fit its field's type. It collects problems
// instead of stopping at the first.
type decoder struct {
	problems []Problem
	readFile func(string) ([]byte, error)
	// secret counts the secret fields being decoded (a field tagged
	// secret:"true" and everything below it): their values never appear
	// in a message.
	secret int
	// rank gives the layer that set a key (or the nearest parent a layer
	// set), higher for later layers; it decides between a secret and its
	// _file key.
	rank func(key string) int
	// valuesRank is the rank of the first Options.Values layer (0: none
	// known): a secret such a layer set, even empty, is given.
	valuesRank int
	// entry and entryKey are the path and the key of the map entry being
	// decoded (workers.orders, orders): a name with a "." in it, split
	// into nested keys when the configuration loads, shows there as a
	// mapping where the entry's value was expected.
	entry, entryKey string
}

// describe is the package's describe, or only the kind of the value
// inside a secret field.
func (d *decoder) describe(in any) string {
	if d.secret > 0 {
		return kindOf(in) + " (value hidden: the key is secret)"
	}
	return describe(in)
}

// quote quotes s for a message, or hides it inside a secret field.
func (d *decoder) quote(s string) string {
	if d.secret > 0 {
		return "(value hidden: the key is secret)"
	}
	return strconv.Quote(s)
}

func (d *decoder) add(key, format string, args ...any) {
	d.problems = append(d.problems, Problem{Key: key, Msg: sprintf(format, args...)})
}

// decode sets out (settable) from in; nil leaves out as it is. When out
// implements Validator, Validate runs and its problems are recorded under
// path, except those at keys that already failed to decode (a field that
// failed keeps its previous value, so the rest is still worth checking).
func (d *decoder) decode(path string, in any, out reflect.Value) {
	if in == nil {
		return
	}
	before := len(d.problems)
	d.decodeValue(path, in, out)
	if !out.CanAddr() {
		return
	}
	ptr := out.Addr()
	if !ptr.Type().Implements(validatorType) || (out.Kind() == reflect.Pointer && out.IsNil()) {
		return
	}
	failed := slices.Clone(d.problems[before:])
	if len(failed) > 0 && failed[0].Key == path {
		return // the value as a whole did not decode
	}
	for _, p := range appendErr(nil, path, ptr.Interface().(Validator).Validate()) {
		if p.Key == path {
			p = refineKey(p, out)
		}
		if !slices.ContainsFunc(failed, func(f Problem) bool { return p.Key == f.Key || isBelow(p.Key, f.Key) }) {
			d.problems = append(d.problems, p)
		}
	}
}

// isBelow reports whether key lies under parent.
func isBelow(key, parent string) bool {
	return strings.HasPrefix(key, parent+".") || strings.HasPrefix(key, parent+"[")
}

func (d *decoder) decodeValue(path string, in any, out reflect.Value) {
	t := out.Type()
	if s, ok := in.(text); ok {
		var ok bool
		if in, ok = d.fromText(path, string(s), t); !ok {
			return
		}
	}
	// A value of exactly the field's type (defaults keep their types).
	if rv := reflect.ValueOf(in); rv.Type() == t {
		switch t.Kind() {
		case reflect.Map, reflect.Slice, reflect.Struct, reflect.Pointer, reflect.Interface:
			if t.Implements(textMarshalerType) || t == durationType {
				out.Set(rv)
				return
			}
		case reflect.Float32, reflect.Float64:
			// Checked below: a NaN or an infinity is refused.
		default:
			out.Set(rv)
			return
		}
	}
	if t == durationType {
		s, ok := in.(string)
		if !ok {
			d.add(path, "expected a duration such as \"30s\", got %s", d.describe(in))
			return
		}
		dur, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			d.add(path, "invalid duration %s: use a number with a unit (500ms, 30s, 5m, 1h)", d.quote(s))
			return
		}
		out.SetInt(int64(dur))
		return
	}
	if t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(textUnmarshalerType) {
		s, ok := in.(string)
		if !ok {
			d.add(path, "expected a string, got %s", d.describe(in))
			return
		}
		if err := out.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			if d.secret > 0 {
				d.add(path, "invalid value %s", d.quote(s))
			} else {
				d.add(path, "invalid value %q: %v", s, err)
			}
		}
		return
	}
	switch t.Kind() {
	case reflect.String:
		s, ok := in.(string)
		if !ok {
			switch in := in.(type) {
			case map[string]any:
				// An empty mapping ({}) is no name split at a ".".
				if path == d.entry && len(in) > 0 {
					d.add(path, "a name with a \".\" (%s) %s", quoteAll(leafNames(d.entryKey, in)), dottedName)
					return
				}
				d.add(path, "expected a string, got %s", d.describe(in))
			case []any:
				d.add(path, "expected a string, got %s", d.describe(in))
			default: // a number, true or false: quoted, it is a string
				d.add(path, "expected a string, got %s (quote it)", d.describe(in))
			}
			return
		}
		out.SetString(s)
	case reflect.Bool:
		b, ok := in.(bool)
		if !ok {
			d.add(path, "expected true or false, got %s", d.describe(in))
			return
		}
		out.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := toInt(in)
		if !ok {
			d.add(path, "expected an integer, got %s", d.describe(in))
			return
		}
		if n.big || out.OverflowInt(n.i) {
			d.add(path, "integer %s out of range for %s", n, t)
			return
		}
		out.SetInt(n.i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, ok := toInt(in)
		if !ok {
			d.add(path, "expected a non-negative integer, got %s", d.describe(in))
			return
		}
		if !n.big && n.i < 0 {
			d.add(path, "expected a non-negative integer, got %s", d.describe(in))
			return
		}
		u := uint64(n.i)
		if n.big {
			u = n.u
		}
		if out.OverflowUint(u) {
			d.add(path, "integer %s out of range for %s", n, t)
			return
		}
		out.SetUint(u)
	case reflect.Float32, reflect.Float64:
		var f float64
		switch x := in.(type) {
		case float64:
			f = x
		case float32:
			f = float64(x)
		default:
			n, ok := toInt(in)
			if !ok {
				d.add(path, "expected a number, got %s", d.describe(in))
				return
			}
			f = float64(n.i)
			if n.big {
				f = float64(n.u)
			}
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			// NaN passes every range check a Validate method makes.
			d.add(path, "expected a finite number, got %s", d.describe(in))
			return
		}
		if out.OverflowFloat(f) {
			d.add(path, "number %v out of range for %s", f, t)
			return
		}
		out.SetFloat(f)
	case reflect.Interface:
		v := reflect.ValueOf(plain(in))
		if !v.Type().AssignableTo(t) {
			d.add(path, "expected %s, got %s", t, d.describe(in))
			return
		}
		out.Set(v)
	case reflect.Pointer:
		if out.IsNil() {
			out.Set(reflect.New(t.Elem()))
		}
		d.decode(path, in, out.Elem())
	case reflect.Struct:
		d.decodeStruct(path, in, out)
	case reflect.Map:
		d.decodeMap(path, in, out)
	case reflect.Slice:
		list, ok := in.([]any)
		if !ok {
			d.add(path, "expected a list, got %s", d.describe(in))
			return
		}
		s := reflect.MakeSlice(t, len(list), len(list))
		for i, item := range list {
			d.decode(fmt.Sprintf("%s[%d]", path, i), item, s.Index(i))
		}
		out.Set(s)
	case reflect.Array:
		list, ok := in.([]any)
		if !ok || len(list) != t.Len() {
			d.add(path, "expected a list of %d items, got %s", t.Len(), d.describe(in))
			return
		}
		for i, item := range list {
			d.decode(fmt.Sprintf("%s[%d]", path, i), item, out.Index(i))
		}
	default:
		d.add(path, "cannot decode into a field of type %s", t)
	}
}

func (d *decoder) decodeStruct(path string, in any, out reflect.Value) {
	m, ok := in.(map[string]any)
	if !ok {
		d.add(path, "expected a mapping, got %s", d.describe(in))
		return
	}
	fs := fieldsOf(out.Type())
	skip := d.secretPairs(path, m, fs, out)
	for _, key := range sortedKeys(m) {
		val := m[key]
		if skip[key] {
			continue
		}
		if f, ok := fieldByKey(fs, key); ok {
			if f.secret || f.userinfo {
				d.secret++
			}
			d.decode(joinKey(path, key), val, out.FieldByIndex(f.index))
			if f.secret || f.userinfo {
				d.secret--
			}
			continue
		}
		if base, isFile := strings.CutSuffix(key, "_file"); isFile {
			if f, ok := fieldByKey(fs, base); ok && f.secret {
				if fv := out.FieldByIndex(f.index); fv.Kind() == reflect.String {
					d.secretFile(joinKey(path, key), val, fv)
				} else {
					// A secret mapping or list (exporter headers).
					d.add(joinKey(path, key), "a file holds one string, but %s is %s: set %s itself (from the environment, say)", base, kindName(fv.Kind()), base)
				}
				continue
			}
		}
		if _, isMap := val.(map[string]any); isMap && path == d.entry {
			// workers.orders.eu: {...} is most likely the pool "orders.eu".
			d.add(joinKey(path, key), "unknown key (known keys: %s); or, if %q is meant as a name: a name with a \".\" %s",
				fieldKeys(fs), d.entryKey+"."+key, dottedName)
			continue
		}
		d.add(joinKey(path, key), "unknown key (known keys: %s)", fieldKeys(fs))
	}
}

// defaultEntry is the map key whose value is the template for every other
// entry of a map-valued key (workers.default for workers.orders).
const defaultEntry = "default"

func (d *decoder) decodeMap(path string, in any, out reflect.Value) {
	t := out.Type()
	if t.Key().Kind() != reflect.String {
		d.add(path, "cannot decode into a map keyed by %s", t.Key())
		return
	}
	m, ok := in.(map[string]any)
	if !ok {
		d.add(path, "expected a mapping, got %s", d.describe(in))
		return
	}
	if t.Elem() == reflect.TypeFor[string]() {
		m = dottedEntries(m)
	}
	if out.IsNil() {
		out.Set(reflect.MakeMapWithSize(t, len(m)))
	}
	tmpl, hasTmpl := m[defaultEntry]
	for _, key := range sortedKeys(m) {
		k := reflect.New(t.Key()).Elem()
		k.SetString(key)
		elem := reflect.New(t.Elem()).Elem()
		if cur := out.MapIndex(k); cur.IsValid() {
			elem.Set(cur)
		} else if hasTmpl && tmpl != nil && key != defaultEntry {
			// Start from the template; its own problems are reported
			// once, at its own key.
			quiet := decoder{readFile: d.readFile, rank: d.rank, valuesRank: d.valuesRank}
			quiet.decodeValue(joinKey(path, defaultEntry), tmpl, elem)
		}
		prevEntry, prevKey := d.entry, d.entryKey
		d.entry, d.entryKey = joinKey(path, key), key
		d.decode(joinKey(path, key), m[key], elem)
		d.entry, d.entryKey = prevEntry, prevKey
		out.SetMapIndex(k, elem)
	}
}

// fromText converts a string from the environment or --set for a field of
// type t: strings, durations and text types take it as it is, everything
// else reads it as a YAML scalar or flow value ("4", "true", "[a, b]"),
// and lists also accept "a,b".
func (d *decoder) fromText(path, s string, t reflect.Type) (any, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.String || t.Kind() == reflect.Interface || t == durationType ||
		reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return s, true
	}
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil || v == nil {
		if t.Kind() == reflect.Slice && strings.TrimSpace(s) == "" {
			return []any{}, true
		}
		if t.Kind() != reflect.Slice {
			return s, true // reported as a type mismatch against t
		}
	}
	if t.Kind() == reflect.Slice {
		if list, ok := v.([]any); ok {
			return normalize(list), true
		}
		parts := strings.Split(s, ",")
		list := make([]any, len(parts))
		for i, p := range parts {
			list[i] = text(strings.TrimSpace(p))
		}
		return list, true
	}
	return normalize(v), true
}
