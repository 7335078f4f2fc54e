package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/v2"
)

// EnvPrefix starts every environment variable that sets configuration.
// PLBA_<SECTION>__<KEY> sets section.key: a double underscore separates
// levels, single underscores stay in key names, and the name is
// lower-cased (PLBA_WORKERS__DEFAULT__TASK_TIMEOUT sets
// workers.default.task_timeout). Variables with the prefix but without a
// double underscore (PLBA_CONFIG) are not configuration keys and are
// ignored.
const EnvPrefix = "PLBA_"

// Options says where Load finds configuration. Later layers win:
// declared defaults < Files in order < Environ < Sets in order.
type Options struct {
	// Files are YAML files, applied in order; each must be a regular file
	// (or a link to one): a FIFO or a device is refused.
	Files []string
	// Environ is the environment as "KEY=value" strings; nil means
	// os.Environ(). Pass an empty, non-nil slice to ignore the environment.
	Environ []string
	// Sets are "key=value" strings from --set flags, applied in order. The
	// value is read like an environment value.
	Sets []string
	// Registry holds the declared sections; nil means DefaultRegistry.
	Registry *Registry
	// ReadFile reads files (configuration files and secret _file keys);
	// nil means ReadFile, which refuses files over MaxFileSize.
	ReadFile func(name string) ([]byte, error)
	// Values sets whole sections, by name, to values of their declared
	// type: a layer above Sets (a test kit gives a module its section as
	// a struct this way). Every field counts as set: an empty secret
	// there is the secret, not one left to an earlier layer's _file key.
	Values map[string]any
	// Partial makes Load return the configuration along with its *Error
	// when it finds problems: every value that decoded, the rest at what
	// the lower layers (at least the defaults) said. It is for printing a
	// configuration that is not complete yet (`host config show`); never
	// run on one.
	Partial bool
}

// mapProvider hands koanf an already parsed layer.
type mapProvider map[string]any

func (m mapProvider) ReadBytes() ([]byte, error) {
	return nil, errors.New("config: map provider has no bytes")
}

func (m mapProvider) Read() (map[string]any, error) { return m, nil }

// Load reads the layers, merges them (defaults < files < env < --set),
// rejects keys no section declares, decodes and validates every declared
// section. Every problem found is reported at once in an *Error.
func Load(opts Options) (*Config, error) {
	reg := opts.Registry
	if reg == nil {
		reg = DefaultRegistry
	}
	read := opts.ReadFile
	if read == nil {
		read = ReadFile
	}
	env := opts.Environ
	if env == nil {
		env = os.Environ()
	}
	secs := reg.snapshot()
	c := &Config{
		reg:      reg,
		sources:  map[string]source{},
		values:   map[string]any{},
		files:    slices.Clone(opts.Files),
		readFile: read,
	}
	var problems []Problem
	k := koanf.New(".")
	rank := 0
	// keepSecrets: an empty secret or _file name in this layer is one not
	// given; it does not replace what an earlier layer gave (a compose
	// file's PLBA_..._PASSWORD: ${PASSWORD:-}, empty when unset, must not
	// wipe out a config file's password). Options.Values sets its
	// sections as they are.
	keepSecrets := false
	// apply merges one layer; srcOf names the source of each leaf key.
	apply := func(layer map[string]any, srcOf func(key string) string) {
		flat := map[string]any{}
		var twice []string
		flatten("", layer, flat, &twice)
		// One source that sets a key twice (a dotted key and a nested one,
		// or a value and, below it, a mapping) would lose one of the
		// values, which one depending on map order.
		slices.Sort(twice)
		for _, key := range twice {
			problems = append(problems, Problem{Source: srcOf(key), Key: key, Msg: "set twice in this source (a dotted key and a nested one name it): one value would be lost"})
		}
		reported := map[string]bool{}
		for _, key := range sortedKeys(flat) {
			for p := parentKey(key); p != ""; p = parentKey(p) {
				if v, ok := flat[p]; ok && v != nil && !emptyMapping(v) && !reported[p] {
					reported[p] = true
					problems = append(problems, Problem{Source: srcOf(p), Key: p, Msg: "set twice in this source: to a value, and to a mapping by " + key + ": one would be lost"})
				}
			}
		}
		nested := map[string]any{}
		for _, key := range sortedKeys(flat) {
			if flat[key] == nil && k.Exists(key) {
				// A null does not erase what a lower layer set.
				continue
			}
			if keepSecrets && emptyText(flat[key]) && givenValue(k.Get(key)) && secretKey(secs, key) {
				continue
			}
			c.sources[key] = source{name: srcOf(key), rank: rank}
			setPath(nested, key, flat[key])
		}
		// mapProvider.Read cannot fail and no parser is used.
		_ = k.Load(mapProvider(nested), nil)
		rank++
	}

	defaults := map[string]any{}
	for _, s := range secs {
		setPath(defaults, s.name, toTree(reflect.ValueOf(s.def), false))
	}
	apply(defaults, func(string) string { return "default" })
	keepSecrets = true

	parser := yaml.Parser()
	for _, name := range opts.Files {
		// A FIFO nobody writes to would block the read for ever, a device
		// feed it up to the size limit. (A name that cannot be stat'ed,
		// such as an embedded configuration's, is left to read.)
		if err := RegularFile(name); err != nil {
			problems = append(problems, Problem{Source: name, Msg: "cannot read file: " + err.Error()})
			continue
		}
		b, err := read(name)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			problems = append(problems, Problem{Source: name, Msg: "cannot read file: " + err.Error()})
			continue
		}
		m, err := parseYAML(parser, b)
		if err != nil {
			problems = append(problems, Problem{Source: name, Msg: yamlMessage(err)})
			continue
		}
		for _, key := range dropEmptyKeys("", m) {
			problems = append(problems, Problem{Source: name, Key: key, Msg: `empty key ("") in a mapping`})
		}
		apply(m, func(string) string { return name })
	}

	envLayer, envSrc := map[string]any{}, map[string]string{}
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		rest, isOurs := strings.CutPrefix(name, EnvPrefix)
		if !ok || !isOurs || !strings.Contains(rest, "__") {
			continue
		}
		parts := strings.Split(strings.ToLower(rest), "__")
		if slices.Contains(parts, "") {
			problems = append(problems, Problem{Source: "env " + name, Msg: "empty key segment in variable name"})
			continue
		}
		key := strings.Join(parts, ".")
		if prev, twice := envSrc[key]; twice {
			// PLBA_LOG__LEVEL and PLBA_log__level: one would be lost.
			problems = append(problems, Problem{Source: "env " + name, Key: key, Msg: "set twice (also by " + strings.TrimPrefix(prev, "env ") + ")"})
		}
		envLayer[key] = text(val)
		envSrc[key] = "env " + name
	}
	apply(envLayer, func(key string) string { return envSrc[key] })

	for _, s := range opts.Sets {
		key, val, ok := strings.Cut(s, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.Contains(key, "..") || strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") {
			got := quoteShort(s)
			if ok { // only the key part: the value may be a secret
				got = "key " + quoteShort(key) + " (value not shown)"
			}
			problems = append(problems, Problem{Source: "--set", Msg: "usage: expected key=value with a dotted key, got " + got})
			continue
		}
		apply(map[string]any{key: text(val)}, func(string) string { return "--set " + key + "=..." })
	}

	keepSecrets = false
	c.valuesRank = rank
	for _, name := range slices.Sorted(maps.Keys(opts.Values)) {
		d, ok := reg.lookup(name)
		v := reflect.ValueOf(opts.Values[name])
		switch {
		case !ok:
			problems = append(problems, Problem{Source: "value", Key: name, Msg: "unknown section"})
		case !v.IsValid() || v.Type() != d.typ:
			problems = append(problems, Problem{Source: "value", Key: name, Msg: fmt.Sprintf("value of type %T for a section of type %s", opts.Values[name], d.typ)})
		default:
			apply(map[string]any{name: toTree(v, false)}, func(string) string { return "value " + name })
		}
	}

	c.tree = k.Raw()
	d := decoder{readFile: read, rank: c.rankOf, valuesRank: c.valuesRank}
	checkUnknown(&d, secs, "", c.tree)
	for _, s := range secs {
		v := reflect.New(s.typ)
		if c.untouched(secs, s.name) {
			// Only defaults: decode, but leave validation to Decode (and
			// so to Provide when a module actually uses the section).
			// An application that is not composed may ship defaults that
			// need settings (a mailbox host) without failing every host.
			if tree := c.sectionTree(secs, s.name); tree != nil {
				d.decodeValue(s.name, tree, v.Elem())
			}
		} else {
			d.decode(s.name, c.sectionTree(secs, s.name), v.Elem())
		}
		applyDefaults(v.Elem())
		c.values[s.name] = v.Interface()
	}
	problems = append(problems, c.attribute(d.problems)...)
	for _, s := range secs {
		v := reflect.ValueOf(c.values[s.name]).Elem()
		v.Set(reflect.ValueOf(reg.derive(c, s.name, v.Interface())))
	}
	if len(problems) > 0 && !opts.Partial {
		return nil, &Error{Problems: dedupe(problems)}
	}
	var err error
	if c.yaml, err = c.render(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(c.yaml)
	c.digest = hex.EncodeToString(sum[:6])
	if len(problems) > 0 {
		return c, &Error{Problems: dedupe(problems)}
	}
	return c, nil
}

func quoteShort(s string) string {
	return `"` + shorten(s) + `"`
}

// checkUnknown reports keys outside every declared section: at top level an
// unknown section, below the parent of a dotted section an unknown key.
func checkUnknown(d *decoder, secs []declared, path string, tree map[string]any) {
	for _, key := range sortedKeys(tree) {
		p := joinKey(path, key)
		switch {
		case slices.ContainsFunc(secs, func(s declared) bool { return s.name == p }):
			// Decoded as its own section.
		case isSectionOrParent(secs, p):
			sub, ok := tree[key].(map[string]any)
			if !ok {
				if tree[key] != nil {
					d.add(p, "expected a mapping, got %s", describe(tree[key]))
				}
				continue
			}
			checkUnknown(d, secs, p, sub)
		case path == "":
			d.add(p, "unknown section (declared sections: %s)", strings.Join(sectionNames(secs), ", "))
		default:
			d.add(p, "unknown key")
		}
	}
}

func sectionNames(secs []declared) []string {
	names := make([]string, len(secs))
	for i, s := range secs {
		names[i] = s.name
	}
	return names
}

// sectionTree returns the merged subtree of section name, without the
// subtrees that belong to dotted sections below it.
func (c *Config) sectionTree(secs []declared, name string) any {
	var cur any = c.tree
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return cur
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if !isSectionOrParent(secs, name+"."+k) {
			out[k] = v
		}
	}
	return out
}

// flatten records the leaves of tree (non-mapping values and empty
// mappings) under their dotted paths; dotted YAML keys ("queue.jetstream:")
// thereby become nested ones. A path reached twice (a dotted key and a
// nested one) is appended to twice.
func flatten(prefix string, tree map[string]any, out map[string]any, twice *[]string) {
	for k, v := range tree {
		p := joinKey(prefix, k)
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			flatten(p, m, out, twice)
			continue
		}
		if _, ok := out[p]; ok && !slices.Contains(*twice, p) {
			*twice = append(*twice, p)
		}
		out[p] = v
	}
}

// emptyMapping reports whether v is an empty mapping (a leaf of flatten
// that a mapping below it merely fills).
func emptyMapping(v any) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 0
}

// dropEmptyKeys removes the empty keys of tree, at any depth, and returns
// the paths of the mappings that had one ("" for the top level).
func dropEmptyKeys(path string, tree map[string]any) []string {
	var found []string
	if _, ok := tree[""]; ok {
		delete(tree, "")
		found = append(found, path)
	}
	for _, k := range sortedKeys(tree) {
		if m, ok := tree[k].(map[string]any); ok {
			found = append(found, dropEmptyKeys(joinKey(path, k), m)...)
		}
	}
	return found
}

// setPath sets the dotted path in tree, creating (or replacing non-mapping
// values with) intermediate mappings, and merging into existing ones.
func setPath(tree map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := tree[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			tree[p] = next
		}
		tree = next
	}
	last := parts[len(parts)-1]
	if m, ok := v.(map[string]any); ok {
		if cur, ok := tree[last].(map[string]any); ok {
			for k, x := range m {
				cur[k] = x
			}
			return
		}
	}
	tree[last] = v
}
