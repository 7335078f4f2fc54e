package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

type integer struct {
	i   int64
	u   uint64
	big bool // above MaxInt64, held in u
}

func (n integer) String() string {
	if n.big {
		return strconv.FormatUint(n.u, 10)
	}
	return strconv.FormatInt(n.i, 10)
}

func toInt(in any) (integer, bool) {
	switch x := in.(type) {
	case int:
		return integer{i: int64(x)}, true
	case int8:
		return integer{i: int64(x)}, true
	case int16:
		return integer{i: int64(x)}, true
	case int32:
		return integer{i: int64(x)}, true
	case int64:
		return integer{i: x}, true
	case uint:
		return uintInteger(uint64(x)), true
	case uint8:
		return integer{i: int64(x)}, true
	case uint16:
		return integer{i: int64(x)}, true
	case uint32:
		return integer{i: int64(x)}, true
	case uint64:
		return uintInteger(x), true
	}
	return integer{}, false
}

func uintInteger(u uint64) integer {
	if u > math.MaxInt64 {
		return integer{u: u, big: true}
	}
	return integer{i: int64(u)}
}

// describe names a value's kind and shows it briefly, for messages.
func describe(in any) string {
	switch x := in.(type) {
	case string:
		return "string " + strconv.Quote(shorten(x))
	case text:
		return "string " + strconv.Quote(shorten(string(x)))
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case float32, float64:
		return fmt.Sprintf("number %v", x)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	if _, ok := toInt(in); ok {
		return fmt.Sprintf("integer %v", in)
	}
	return fmt.Sprintf("%T", in)
}

// kindOf names a value's kind only, for messages about secret keys.
func kindOf(in any) string {
	switch in.(type) {
	case string, text:
		return "a string"
	case bool:
		return "a boolean"
	case float32, float64:
		return "a number"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	if _, ok := toInt(in); ok {
		return "an integer"
	}
	return fmt.Sprintf("%T", in)
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// plain turns text back into string, recursively, for any-typed fields.
func plain(in any) any {
	switch x := in.(type) {
	case text:
		return string(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, v := range x {
			out[k] = plain(v)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = plain(v)
		}
		return out
	}
	return in
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// normalize makes YAML output uniform: map[any]any and nested maps become
// map[string]any.
func normalize(in any) any {
	switch x := in.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, v := range x {
			out[k] = normalize(v)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, v := range x {
			out[fmt.Sprint(k)] = normalize(v)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = normalize(v)
		}
		return out
	}
	return in
}
