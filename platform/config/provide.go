package config

import (
	"errors"
	"fmt"
	"slices"

	"go.uber.org/fx"
)

// Declaration is a declared section: its name, with its type T and its
// default fixed by Declare. Provide gives the section to an fx graph.
type Declaration[T any] struct {
	// Name is the section's name.
	Name string
}

// Declare adds the section name, of type T with def as its default, to
// DefaultRegistry and returns it. Call it at package level, so that the
// section is known before the configuration is loaded:
//
//	var settings = config.Declare("invoices", DefaultConfig())
//
//	func Module() fx.Option { return fx.Module("invoices", settings.Provide(), ...) }
//
// def is the real default: every field at the value the application uses
// when nothing sets it (`host config show` prints it as is). Declaring the
// same name again with the same type and default is allowed (a module
// built twice); anything else conflicting panics: declarations are program
// text, and a conflict must stop the program on its first run.
func Declare[T any](name string, def T) Declaration[T] {
	if err := DefaultRegistry.Declare(name, def); err != nil {
		panic(err)
	}
	return Declaration[T]{Name: name}
}

// Derived has the section's value completed from other sections
// (Registry.Derive in DefaultRegistry): fn gets the section's value with
// its defaults applied and the configuration, and returns the value that
// takes effect, filling only what the layers left unset. Call it at
// package level, on Declare's result:
//
//	var settings = config.Declare("admin", DefaultConfig()).Derived(withStream)
//
// A second call for the same section panics, as a conflicting Declare does.
func (d Declaration[T]) Derived(fn func(v T, c *Config) T) Declaration[T] {
	if err := DefaultRegistry.Derive(d.Name, func(c *Config, v any) any { return fn(v.(T), c) }); err != nil {
		panic(err)
	}
	return d
}

// Provide declares the section (as Declare does) and returns the option
// that provides it (as Declaration.Provide does): one call, the name and
// the default written once. Use it where the module is a package-level
// variable, so that the call runs before the configuration is loaded:
//
//	var Module = fx.Module("invoices",
//		config.Provide("invoices", DefaultConfig()),
//		fx.Provide(newMailer), // func newMailer(c Config) *Mailer
//	)
func Provide[T any](name string, def T) fx.Option {
	return Declare(name, def).Provide()
}

// Tag returns the fx name tag under which Provide makes the section
// available to the whole graph, `name:"config.<section>"`: a constructor
// outside the providing module takes it with
// fx.Annotate(ctor, fx.ParamTags(config.Tag("invoices"))).
func Tag(section string) string { return `name:"config.` + section + `"` }

// usedGroup is the value group through which every provided section names
// itself (ReportProvided).
const usedGroup = `group:"config.provided"`

// provided is a section name in usedGroup.
type provided string

// Provide returns an fx option that gives the graph T decoded from the
// section (defaults, files, environment and --set applied, then
// validated): as T itself, private to the fx.Module that holds the option
// (and the modules inside it), and as T named Tag(name) for the whole
// graph. Two modules may therefore each provide a section of the same type
// (two mailboxes of type imap.Config) without colliding, as long as each
// sits in its own fx.Module. A problem fails fx.New: the option also
// invokes the decoding, so it runs even when nothing asks for T yet.
func (d Declaration[T]) Provide() fx.Option {
	name, tag := d.Name, Tag(d.Name)
	return fx.Options(
		fx.Provide(fx.Annotate(decodeSection[T](name), fx.ResultTags(tag))),
		fx.Provide(fx.Annotate(func(v T) T { return v }, fx.ParamTags(tag)), fx.Private),
		markProvided(name),
		fx.Invoke(fx.Annotate(func(T) {}, fx.ParamTags(tag))),
	)
}

func decodeSection[T any](name string) func(*Config) (T, error) {
	return func(c *Config) (T, error) {
		var v T
		err := c.Decode(name, &v)
		if errors.Is(err, ErrUnknownSection) {
			return v, fmt.Errorf("config section %q was not declared when the configuration was loaded: declare it at package level (config.Declare, or config.Provide in a package-level variable): %w", name, err)
		}
		if err != nil {
			return v, fmt.Errorf("config section %q: %w", name, err)
		}
		return v, nil
	}
}

func markProvided(name string) fx.Option {
	return fx.Provide(fx.Annotate(func() provided { return provided(name) }, fx.ResultTags(usedGroup)))
}

// ReportProvided returns an option that calls fn, while fx.New builds the
// graph, with the names (sorted, once each) of the sections the graph's
// modules provide through Provide. Put it first among fx.New's
// options: it runs before every other module's invocations, so a later
// failure does not hide a section. `host config show` uses it to print
// only the sections of the composed applications.
func ReportProvided(fn func(sections []string)) fx.Option {
	return fx.Module("config.provided",
		fx.Invoke(fx.Annotate(func(ps []provided) {
			names := make([]string, 0, len(ps))
			for _, p := range ps {
				if !slices.Contains(names, string(p)) {
					names = append(names, string(p))
				}
			}
			slices.Sort(names)
			fn(names)
		}, fx.ParamTags(usedGroup))),
	)
}
