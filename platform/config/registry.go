package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Registry holds the declared sections: their names, types and default
// values. Packages declare into DefaultRegistry at package level (through
// Declare), so the set of known keys is complete before fx runs; tests use
// their own NewRegistry to stay independent.
type Registry struct {
	mu       sync.RWMutex
	sections map[string]declared
	derived  map[string]func(c *Config, v any) any
}

type declared struct {
	name string
	typ  reflect.Type
	def  any
}

// DefaultRegistry is where Declare puts sections and what Load uses when
// Options.Registry is nil.
var DefaultRegistry = NewRegistry()

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{sections: map[string]declared{}, derived: map[string]func(*Config, any) any{}}
}

// Derive completes the declared section name from other sections: after
// every section is decoded and its WithDefaults applied, fn gets the
// configuration and the section's value (of the declared type, not a
// pointer) and returns the value that takes effect, as Decode, the graph
// and `host config show` get it. It is for a default that follows
// another section's setting; fn fills only what the layers left unset,
// may Decode other sections (not its own), and must not fail: a section
// that does not decode leaves the value as it is. One fn per section.
func (r *Registry) Derive(name string, fn func(c *Config, v any) any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.sections[name]; !ok {
		return fmt.Errorf("config: derive %q: %w", name, ErrUnknownSection)
	}
	if _, dup := r.derived[name]; dup {
		return fmt.Errorf("config: derive %q: section derived twice", name)
	}
	r.derived[name] = fn
	return nil
}

// derive returns the value v of section name completed by its Derive
// function, or v when it has none.
func (r *Registry) derive(c *Config, name string, v any) any {
	r.mu.RLock()
	fn := r.derived[name]
	r.mu.RUnlock()
	if fn == nil {
		return v
	}
	return fn(c, v)
}

var sectionName = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)

// Declare adds the section name with def as its default value; def's type
// is the section's type. Names are lower-case snake_case words, possibly
// dotted ("queue.jetstream"): keys under a dotted section belong to it, not
// to its parent. Declaring a name twice with another type or default, a
// bad name, or a nil default is an error; the same declaration again is
// not.
func (r *Registry) Declare(name string, def any) error {
	if !sectionName.MatchString(name) {
		return fmt.Errorf("config: declare %q: name must be lower-case words separated by dots", name)
	}
	if def == nil {
		return fmt.Errorf("config: declare %q: default value is nil, its type is unknown", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, dup := r.sections[name]; dup {
		if prev.typ == reflect.TypeOf(def) && reflect.DeepEqual(prev.def, def) {
			return nil // the same declaration again (a module built twice)
		}
		return fmt.Errorf("config: declare %q: section declared twice (as %s and as %T)", name, prev.typ, def)
	}
	r.sections[name] = declared{name: name, typ: reflect.TypeOf(def), def: def}
	return nil
}

// Names returns the declared section names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.sections))
	for n := range r.sections {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// SectionsOf returns the names of the sections declared with the type of
// v, sorted.
func (r *Registry) SectionsOf(v any) []string {
	t := reflect.TypeOf(v)
	var out []string
	for _, d := range r.snapshot() {
		if d.typ == t {
			out = append(out, d.name)
		}
	}
	return out
}

func (r *Registry) lookup(name string) (declared, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.sections[name]
	return d, ok
}

func (r *Registry) snapshot() []declared {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]declared, 0, len(r.sections))
	for _, d := range r.sections {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b declared) int { return strings.Compare(a.name, b.name) })
	return out
}

// isSectionOrParent reports whether path is a declared section or lies on
// the way to one ("queue" when "queue.jetstream" is declared).
func isSectionOrParent(secs []declared, path string) bool {
	for _, d := range secs {
		if d.name == path || strings.HasPrefix(d.name, path+".") {
			return true
		}
	}
	return false
}

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}
