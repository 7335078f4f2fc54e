package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Config is the loaded, validated configuration: every declared section
// decoded from the merged layers. It is immutable and safe for concurrent
// use.
type Config struct {
	reg      *Registry
	tree     map[string]any    // merged layers
	sources  map[string]source // leaf key path -> where its value came from
	values   map[string]any    // section name -> decoded value (pointer)
	files    []string
	readFile func(string) ([]byte, error)
	// valuesRank is the rank of the first Options.Values layer (no
	// source of a file, the environment or --set has it or a higher one).
	valuesRank int
	yaml       []byte
	digest     string
}

// Decode decodes section name into out (a non-nil pointer), from the same
// merged layers Load checked, and validates it. out's type need not be the
// declared one. A problem returns an *Error; an undeclared name returns
// ErrUnknownSection.
func (c *Config) Decode(name string, out any) error {
	if _, ok := c.reg.lookup(name); !ok {
		return fmt.Errorf("config: decode %q: %w", name, ErrUnknownSection)
	}
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config: decode %q: out must be a non-nil pointer, got %T", name, out)
	}
	d := decoder{readFile: c.readFile, rank: c.rankOf, valuesRank: c.valuesRank}
	d.decode(name, c.sectionTree(c.reg.snapshot(), name), rv.Elem())
	if len(d.problems) > 0 {
		return &Error{Problems: dedupe(c.attribute(d.problems))}
	}
	applyDefaults(rv.Elem())
	if d, _ := c.reg.lookup(name); rv.Elem().Type() == d.typ {
		rv.Elem().Set(reflect.ValueOf(c.reg.derive(c, name, rv.Elem().Interface())))
	}
	return nil
}

// YAML returns the effective configuration: every declared section with
// defaults, files, environment and --set applied, secrets redacted, keys
// sorted. It is what `host config show` prints.
func (c *Config) YAML() []byte {
	return slices.Clone(c.yaml)
}

// Digest returns a short stable hash (12 hex digits) of YAML(): equal
// effective configurations have equal digests, and secrets do not show.
func (c *Config) Digest() string { return c.digest }

// Files returns the configuration files Load read, in order.
func (c *Config) Files() []string { return slices.Clone(c.files) }

// Sections returns the names of the declared sections the configuration
// holds, sorted.
func (c *Config) Sections() []string { return c.reg.Names() }

func (c *Config) render() ([]byte, error) {
	root := map[string]any{}
	for _, name := range slices.Sorted(maps.Keys(c.values)) {
		setPath(root, name, toTree(reflect.ValueOf(c.values[name]), true))
	}
	b, err := yaml.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("config: render YAML: %w", err)
	}
	return b, nil
}
