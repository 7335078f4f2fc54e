package config

import (
	"encoding"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Redacted replaces the value of a non-empty secret in YAML() and Redact.
const Redacted = "[redacted]"

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
	validatorType       = reflect.TypeFor[Validator]()
)

// field is one configuration key of a struct type.
type field struct {
	key    string
	index  []int
	secret bool // a string field tagged secret:"true"
	// userinfo: a string (or list of strings) of URLs tagged
	// secret:"userinfo": the user information of each URL is secret.
	userinfo bool
}

var fieldCache sync.Map // reflect.Type -> []field

// fieldsOf lists the keys of struct type t: exported fields named by their
// koanf tag (lower-cased field name without one), skipping `koanf:"-"`,
// with embedded structs (untagged, or tagged ",squash") inlined.
func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	collectFields(t, nil, &fs)
	fieldCache.Store(t, fs)
	return fs
}

func collectFields(t reflect.Type, index []int, out *[]field) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		idx := append(slices.Clone(index), i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct && (name == "" || strings.Contains(opts, "squash")) {
			collectFields(f.Type, idx, out)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		*out = append(*out, field{
			key:      name,
			index:    idx,
			secret:   f.Tag.Get("secret") == "true" && secretable(f.Type),
			userinfo: f.Tag.Get("secret") == "userinfo" && secretable(f.Type),
		})
	}
}

func fieldByKey(fs []field, key string) (field, bool) {
	for _, f := range fs {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

func fieldKeys(fs []field) string {
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = f.key
	}
	return strings.Join(keys, ", ")
}

// toTree turns a Go value into the nested map form koanf merges. With
// output false it keeps scalar values in their own types (durations,
// TextMarshalers) so decoding gives them back exactly; with output true it
// renders them as text for YAML and redacts secrets.
func toTree(v reflect.Value, output bool) any {
	if !v.IsValid() {
		return nil
	}
	t := v.Type()
	if t == durationType {
		if output {
			return time.Duration(v.Int()).String()
		}
		return v.Interface()
	}
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface && t.Implements(textMarshalerType) {
		if !output {
			return v.Interface()
		}
		text, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return fmt.Sprintf("<%v>", err)
		}
		return string(text)
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return toTree(v.Elem(), output)
	case reflect.Struct:
		m := map[string]any{}
		for _, f := range fieldsOf(t) {
			fv := v.FieldByIndex(f.index)
			if output && f.secret {
				m[f.key] = redactedTree(fv)
				continue
			}
			if output && f.userinfo {
				m[f.key] = toTree(redactUserinfoValue(fv), output)
				continue
			}
			m[f.key] = toTree(fv, output)
		}
		return m
	case reflect.Map:
		if v.IsNil() && !output {
			return nil
		}
		m := make(map[string]any, v.Len())
		it := v.MapRange()
		for it.Next() {
			m[fmt.Sprint(it.Key().Interface())] = toTree(it.Value(), output)
		}
		return m
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		l := make([]any, v.Len())
		for i := range l {
			l[i] = toTree(v.Index(i), output)
		}
		return l
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return nil
	default:
		if output {
			// Plain kinds, so named types render as their values.
			switch t.Kind() {
			case reflect.String:
				return v.String()
			case reflect.Bool:
				return v.Bool()
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				return v.Int()
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
				return v.Uint()
			case reflect.Float32, reflect.Float64:
				return v.Float()
			}
		}
		return v.Interface()
	}
}

// Redact returns a deep copy of v (same type) in which every non-empty
// string field tagged secret:"true", at any depth (structs, pointers, maps,
// slices), reads "[redacted]"; so does every value of a secret map of
// strings (HTTP headers) or element of a secret slice of strings. A field
// of URLs tagged secret:"userinfo" keeps its URLs with their user
// information redacted (RedactUserinfo). Use it before logging a
// configuration or showing it in the admin status. v itself is not
// changed.
func Redact(v any) any {
	if v == nil {
		return nil
	}
	return redactValue(reflect.ValueOf(v), 0, false).Interface()
}

// maxRedactDepth bounds the walk, so a value with a pointer cycle is
// returned unredacted below that depth instead of overflowing the stack.
const maxRedactDepth = 64

// redactValue copies v; secret says v lies in a field tagged secret, so its
// non-empty strings become Redacted.
func redactValue(v reflect.Value, depth int, secret bool) reflect.Value {
	if depth > maxRedactDepth {
		return v
	}
	t := v.Type()
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		n := reflect.New(t.Elem())
		n.Elem().Set(redactValue(v.Elem(), depth+1, secret))
		return n
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		n := reflect.New(t).Elem()
		n.Set(redactValue(v.Elem(), depth+1, secret))
		return n
	case reflect.Struct:
		n := reflect.New(t).Elem()
		n.Set(v)
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Tag.Get("secret") == "true" && secretable(f.Type) {
				n.Field(i).Set(redactValue(v.Field(i), depth+1, true))
				continue
			}
			if f.Tag.Get("secret") == "userinfo" && secretable(f.Type) {
				n.Field(i).Set(redactUserinfoValue(v.Field(i)))
				continue
			}
			n.Field(i).Set(redactValue(v.Field(i), depth+1, secret))
		}
		return n
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		n := reflect.MakeMapWithSize(t, v.Len())
		it := v.MapRange()
		for it.Next() {
			n.SetMapIndex(it.Key(), redactValue(it.Value(), depth+1, secret))
		}
		return n
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		n := reflect.MakeSlice(t, v.Len(), v.Len())
		for i := range v.Len() {
			n.Index(i).Set(redactValue(v.Index(i), depth+1, secret))
		}
		return n
	case reflect.Array:
		n := reflect.New(t).Elem()
		for i := range v.Len() {
			n.Index(i).Set(redactValue(v.Index(i), depth+1, secret))
		}
		return n
	case reflect.String:
		if secret && v.Len() > 0 {
			n := reflect.New(t).Elem()
			n.SetString(Redacted)
			return n
		}
		return v
	default:
		return v
	}
}

// secretable reports whether a field of type t can carry the secret tag:
// a string, or a map or slice of strings (every value is secret).
func secretable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String:
		return true
	case reflect.Map, reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

// redactedTree renders a secret field for output: each non-empty string
// reads Redacted; map keys (header names) stay visible.
func redactedTree(v reflect.Value) any {
	switch v.Kind() {
	case reflect.String:
		if v.Len() == 0 {
			return ""
		}
		return Redacted
	case reflect.Map:
		m := make(map[string]any, v.Len())
		it := v.MapRange()
		for it.Next() {
			m[fmt.Sprint(it.Key().Interface())] = redactedTree(it.Value())
		}
		return m
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		l := make([]any, v.Len())
		for i := range l {
			l[i] = redactedTree(v.Index(i))
		}
		return l
	}
	return Redacted
}

// RedactUserinfo replaces the user information of every URL in s (one
// URL, or several separated by commas) with Redacted:
// "nats://alice:pw@10.0.0.1:4222" reads "nats://[redacted]@10.0.0.1:4222",
// and so does "alice:pw@10.0.0.1:4222" without a scheme. The user
// information is what precedes the last "@" of the authority (the part
// before the first "/", "?" or "#"). A user name alone is redacted too,
// since some schemes carry a token there.
func RedactUserinfo(s string) string {
	parts := strings.Split(s, ",")
	for i, u := range parts {
		prefix, rest := "", u
		if scheme, r, ok := strings.Cut(u, "://"); ok {
			prefix, rest = scheme+"://", r
		}
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
			parts[i] = prefix + Redacted + rest[at:]
		}
	}
	return strings.Join(parts, ",")
}

// urlUserinfo matches the user information of URLs with a scheme inside
// free text (an error message that quotes a URL).
var urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#"'@]*@`)

// RedactURLsIn replaces the user information of every URL with a scheme
// in the text s (an error message from a client library that quotes the
// URL it was given) with Redacted.
func RedactURLsIn(s string) string {
	return urlUserinfo.ReplaceAllString(s, "${1}"+Redacted+"@")
}

// redactUserinfoValue copies a string or slice of strings with
// RedactUserinfo applied to each.
func redactUserinfoValue(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.String:
		n := reflect.New(v.Type()).Elem()
		n.SetString(RedactUserinfo(v.String()))
		return n
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		n := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			n.Index(i).Set(redactUserinfoValue(v.Index(i)))
		}
		return n
	}
	return v
}
