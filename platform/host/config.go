package host

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/plba/plba/platform/config"
)

// Section is the name of the host's configuration section.
const Section = "host"

// Config is the "host" configuration section.
type Config struct {
	// Apps lists optional applications to compose into the host, by the
	// name they were linked with (OptionalApp). Apps linked with App are
	// composed whether listed or not. Empty: the apps linked with App
	// alone (or the platform alone when there are none).
	Apps []string `koanf:"apps"`
}

// Validate checks that no app is listed twice.
func (c Config) Validate() error {
	var ps config.Problems
	for i, a := range c.Apps {
		if j := slices.Index(c.Apps, a); j < i {
			ps.Add(fmt.Sprintf("apps[%d]", i), "app %q is already listed (apps[%d])", a, j)
		}
	}
	return ps.Err()
}

var _ = config.Declare(Section, Config{})

// appsConfig is the "host" section decoded against the apps linked into
// this binary: Validate also reports names that are not linked.
type appsConfig struct {
	Config
	known *options
}

// Validate checks the section against the linked apps.
func (c *appsConfig) Validate() error {
	var ps config.Problems
	for i, a := range c.Apps {
		key := fmt.Sprintf("apps[%d]", i)
		if _, ok := c.known.lookup(a); !ok {
			ps.Add(key, "unknown app %q (known: %s)", a, c.known.knownList())
		} else if j := slices.Index(c.Apps, a); j < i {
			ps.Add(key, "app %q is already listed (apps[%d])", a, j)
		}
	}
	return ps.Err()
}

// configFlags are the flags every configuration-reading command takes.
type configFlags struct {
	files []string
	sets  []string
}

// load reads the configuration the flags describe: the files given, or the
// built-in configuration when there are none.
func (o *options) load(cf *configFlags) (*config.Config, error) { return o.loadWith(cf, false) }

// loadWith is load; partial returns the configuration with its problems
// (config.Options.Partial), for show.
func (o *options) loadWith(cf *configFlags, partial bool) (*config.Config, error) {
	opts := config.Options{Files: cf.files, Environ: os.Environ(), Sets: cf.sets, Partial: partial}
	if len(cf.files) == 0 && o.defaultName != "" {
		opts.Files = []string{o.defaultName}
		opts.ReadFile = func(name string) ([]byte, error) {
			if name == o.defaultName {
				return o.defaultYAML, nil
			}
			return config.ReadFile(name) // secret files: the same limit
		}
	}
	return config.Load(opts)
}

// configSource says in words which configuration a command runs on.
func (o *options) configSource(cf *configFlags) string {
	switch {
	case len(cf.files) > 0:
		return strings.Join(cf.files, ", ")
	case o.defaultName != "":
		return "the built-in demo configuration " + o.defaultName + " (no --config given)"
	default:
		return "the built-in defaults (no --config given)"
	}
}

// isConfigProblem reports whether err is, or wraps, a configuration
// problem (exit status 2) rather than a runtime failure (exit status 1).
func isConfigProblem(err error) bool {
	var ce *config.Error
	var p config.Problem
	return errors.As(err, &ce) || errors.As(err, &p) || errors.Is(err, config.ErrUnknownSection)
}

// configError prints a configuration error, one problem a line, and
// returns exit status 2. cfg, when the configuration loaded, names the
// source of the problems found after loading (checks across sections, a
// module's own), as Load names those it finds.
func (o *options) configError(stderr io.Writer, cfg *config.Config, err error) int {
	var ce *config.Error
	var p config.Problem
	var ps []config.Problem
	switch {
	case errors.As(err, &ce):
		ps = slices.Clone(ce.Problems)
	case errors.As(err, &p):
		ps = []config.Problem{p}
	default:
		fmt.Fprintf(stderr, "%s: configuration: %s\n", o.prog, oneLine(err))
		return ExitUsage
	}
	fmt.Fprintf(stderr, "%s: invalid configuration (%d problem(s)):\n", o.prog, len(ps))
	for _, p := range ps {
		if p.Source == "" && cfg != nil {
			p.Source, _ = cfg.SourceOf(p.Key)
		}
		fmt.Fprintf(stderr, "  %s\n", p.Error())
	}
	return ExitUsage
}

// startError prints a failure to build or start the host: a configuration
// problem found while building (exit 2) or anything else (exit 1).
func (o *options) startError(stderr io.Writer, cfg *config.Config, err error) int {
	if isConfigProblem(err) {
		return o.configError(stderr, cfg, err)
	}
	fmt.Fprintf(stderr, "%s: %s\n", o.prog, oneLine(err))
	return ExitFailure
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
