package config

import "reflect"

// applyDefaults replaces the section value v (addressable) by
// v.WithDefaults() when its type has that method returning the same type.
// It runs after decoding and validation: Validate sees what the layers
// said (a negative value is reported, not replaced), and the graph and
// `host config show` get the effective values, not zeros that stand for a
// default (a "workers" entry takes the fields it leaves out from the
// "default" entry).
func applyDefaults(v reflect.Value) {
	m := v.MethodByName("WithDefaults")
	if !m.IsValid() {
		return
	}
	t := m.Type()
	if t.NumIn() != 0 || t.NumOut() != 1 || t.Out(0) != v.Type() {
		return
	}
	if v.Kind() == reflect.Pointer && v.IsNil() {
		return
	}
	v.Set(m.Call(nil)[0])
}
