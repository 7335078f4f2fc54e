package host

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.uber.org/fx"
)

// AppOption configures Main: an application to compose, the built-in
// configuration, the program's name.
type AppOption interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// app is an application linked into the host.
type app struct {
	name     string
	module   fx.Option
	optional bool // composed only when host.apps names it
}

// options are Main's settings, from its AppOptions.
type options struct {
	apps []app
	// defaultName and defaultYAML are the configuration used when no
	// --config is given; empty name: the built-in defaults alone.
	defaultName string
	defaultYAML []byte
	prog        string
	extra       []fx.Option // for tests: added to the graph after the apps
}

// App links the application module into the host under name and composes
// it on every run:
//
//	func main() { os.Exit(host.Main(os.Args[1:], host.App("invoices", invoices.Module))) }
//
// The name is what `host.apps` and messages call it.
func App(name string, module fx.Option) AppOption {
	return optionFunc(func(o *options) { o.apps = append(o.apps, app{name: name, module: module}) })
}

// OptionalApp links the application module into the host under name but
// composes it only when the "host.apps" configuration key names it (the
// plba binary links its pilot app and the load generator this way).
func OptionalApp(name string, module fx.Option) AppOption {
	return optionFunc(func(o *options) {
		o.apps = append(o.apps, app{name: name, module: module, optional: true})
	})
}

// DefaultConfig makes yaml the configuration of a run without --config
// (`host run` then says so in its first log line). name is how messages
// and `config validate` refer to it, for example "configs/demo.yaml";
// it is shown as "(embedded) <name>". Without DefaultConfig, a run without
// --config uses the declared defaults alone.
func DefaultConfig(name string, yaml []byte) AppOption {
	return optionFunc(func(o *options) {
		o.defaultName = "(embedded) " + name
		o.defaultYAML = slices.Clone(yaml)
	})
}

// Name sets the program name used in help and messages. Default: the base
// name of the executable (os.Args[0]).
func Name(prog string) AppOption {
	return optionFunc(func(o *options) { o.prog = prog })
}

// newOptions applies opts and checks the apps: every name non-empty and
// given once.
func newOptions(opts []AppOption) (*options, error) {
	o := &options{}
	for _, opt := range opts {
		if opt != nil {
			opt.apply(o)
		}
	}
	if o.prog == "" {
		o.prog = "host"
		if len(os.Args) > 0 && os.Args[0] != "" {
			o.prog = filepath.Base(os.Args[0])
		}
	}
	seen := map[string]bool{}
	for _, a := range o.apps {
		switch {
		case a.name == "":
			return nil, fmt.Errorf("an app has no name")
		case a.module == nil:
			return nil, fmt.Errorf("app %q has no module", a.name)
		case seen[a.name]:
			return nil, fmt.Errorf("app %q is given twice", a.name)
		}
		seen[a.name] = true
	}
	return o, nil
}

// appNames returns the names of the linked apps, sorted.
func (o *options) appNames() []string {
	names := make([]string, 0, len(o.apps))
	for _, a := range o.apps {
		names = append(names, a.name)
	}
	sort.Strings(names)
	return names
}

// lookup returns the app called name.
func (o *options) lookup(name string) (app, bool) {
	for _, a := range o.apps {
		if a.name == name {
			return a, true
		}
	}
	return app{}, false
}

// knownList is the apps' names for a message.
func (o *options) knownList() string {
	if len(o.apps) == 0 {
		return "none linked into this binary"
	}
	return strings.Join(o.appNames(), ", ")
}
