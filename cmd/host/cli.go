package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/plba/plba/cmd/host/internal/buildinfo"
	"github.com/plba/plba/configs"
	"github.com/plba/plba/platform/config"
)

// Exit statuses of the host.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = `usage:
  host run [--config FILE]... [--set key=value]...
  host config show [--config FILE]... [--set key=value]...
  host config validate [--config FILE]... [--set key=value]...
  host version

Without --config the embedded demo configuration (configs/demo.yaml) is used.
Environment variables PLBA_<SECTION>__<KEY> override files; --set overrides all.`

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// configFlags are the flags every config-reading command takes.
type configFlags struct {
	files listFlag
	sets  listFlag
}

func parseFlags(name string, args []string, stderr io.Writer) (*configFlags, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cf := &configFlags{}
	fs.Var(&cf.files, "config", "configuration file (repeatable; later files win)")
	fs.Var(&cf.sets, "set", "key=value override (repeatable; wins over files and env)")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	return cf, nil
}

// embeddedDemo names the demo configuration compiled into the binary.
const embeddedDemo = "(embedded) configs/demo.yaml"

// load reads the configuration the flags describe: the files given, or the
// embedded demo configuration when there are none.
func (cf *configFlags) load() (*config.Config, error) {
	opts := config.Options{Files: cf.files, Environ: os.Environ(), Sets: cf.sets}
	if len(cf.files) == 0 {
		opts.Files = []string{embeddedDemo}
		opts.ReadFile = func(name string) ([]byte, error) {
			if name == embeddedDemo {
				return configs.Demo, nil
			}
			return config.ReadFile(name) // secret files: the same limit
		}
	}
	return config.Load(opts)
}

// Main runs the host command line and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		cf, err := parseFlags("run", args[1:], stderr)
		if err != nil {
			return usageError(stderr, err)
		}
		cfg, err := cf.load()
		if err != nil {
			return configError(stderr, err)
		}
		return runHost(cfg, stderr)
	case "config":
		if len(args) < 2 {
			return usageError(stderr, errors.New("config: want show or validate"))
		}
		cf, err := parseFlags("config "+args[1], args[2:], stderr)
		if err != nil {
			return usageError(stderr, err)
		}
		switch args[1] {
		case "show":
			cfg, err := cf.load()
			if err != nil {
				return configError(stderr, err)
			}
			_, _ = stdout.Write(cfg.YAML())
			return exitOK
		case "validate":
			cfg, err := cf.load()
			if err != nil {
				return configError(stderr, err)
			}
			if err := validateGraph(cfg); err != nil {
				return startError(stderr, err)
			}
			fmt.Fprintf(stdout, "configuration valid (%s, digest %s)\n", strings.Join(cfg.Files(), ", "), cfg.Digest())
			return exitOK
		default:
			return usageError(stderr, fmt.Errorf("config: unknown command %q (want show or validate)", args[1]))
		}
	case "version":
		fmt.Fprintf(stdout, "plba host %s (commit %s, %s)\n", buildinfo.Version, buildinfo.Commit, buildinfo.GoVersion())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return exitOK
	default:
		return usageError(stderr, fmt.Errorf("unknown command %q", args[0]))
	}
}

func usageError(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "host: %v\n%s\n", err, usage)
	return exitUsage
}

// configError prints a configuration error, one problem a line, and
// returns exit status 2.
func configError(stderr io.Writer, err error) int {
	var ce *config.Error
	if errors.As(err, &ce) {
		fmt.Fprintf(stderr, "host: invalid configuration (%d problem(s)):\n", len(ce.Problems))
		for _, p := range ce.Problems {
			fmt.Fprintf(stderr, "  %s\n", p.Error())
		}
		return exitUsage
	}
	fmt.Fprintf(stderr, "host: configuration: %s\n", oneLine(err))
	return exitUsage
}

// startError prints a failure to build or start the host: a configuration
// problem found while building (exit 2) or anything else (exit 1).
func startError(stderr io.Writer, err error) int {
	var ce *config.Error
	if errors.As(err, &ce) {
		return configError(stderr, err)
	}
	fmt.Fprintf(stderr, "host: %s\n", oneLine(err))
	return exitFailure
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
