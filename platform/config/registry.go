package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.uber.org/fx"
)

// Registry holds the declared sections: their names, types and default
// values. Packages declare into DefaultRegistry at package level (through
// Declare), so the set of known keys is complete before fx runs; tests use
// their own NewRegistry to stay independent.
type Registry struct {
	mu       sync.RWMutex
	sections map[string]declared
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
	return &Registry{sections: map[string]declared{}}
}

var sectionName = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)

// Declare adds the section name with def as its default value; def's type
// is the section's type. Names are lower-case snake_case words, possibly
// dotted ("queue.jetstream"): keys under a dotted section belong to it, not
// to its parent. Declaring a name twice, a bad name, or a nil default is an
// error.
func (r *Registry) Declare(name string, def any) error {
	if !sectionName.MatchString(name) {
		return fmt.Errorf("config: declare %q: name must be lower-case words separated by dots", name)
	}
	if def == nil {
		return fmt.Errorf("config: declare %q: default value is nil, its type is unknown", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.sections[name]; dup {
		return fmt.Errorf("config: declare %q: section declared twice", name)
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

// Declaration is what Declare returns: the section's name, and a typed way
// to inject it.
type Declaration[T any] struct {
	// Name is the section's name.
	Name string
}

// Option returns Section[T](d.Name).
func (d Declaration[T]) Option() fx.Option { return Section[T](d.Name) }

// Declare adds a section to DefaultRegistry at package level:
//
//	var _ = config.Declare("imap", imap.DefaultConfig())
//
// It panics on a bad or duplicate name: declarations are program text, and
// a conflict must stop the program on its first run.
func Declare[T any](name string, def T) Declaration[T] {
	if err := DefaultRegistry.Declare(name, def); err != nil {
		panic(err)
	}
	return Declaration[T]{Name: name}
}

// Section returns an fx option providing T decoded from the graph's
// *Config section name (defaults, files, env and --set applied), validated
// through T's Validate method if it has one. A failure fails fx.New: the
// option also invokes the constructor, so it runs even when nothing else
// asks for T yet.
func Section[T any](name string) fx.Option {
	return fx.Options(
		fx.Provide(func(c *Config) (T, error) {
			var v T
			if err := c.Decode(name, &v); err != nil {
				return v, fmt.Errorf("config section %q: %w", name, err)
			}
			return v, nil
		}),
		fx.Invoke(func(T) {}),
	)
}

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}
