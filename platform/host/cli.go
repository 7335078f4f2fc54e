package host

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/plba/plba/platform/host/internal/buildinfo"
)

// Exit statuses of Main.
const (
	// ExitOK: a clean stop, or a command that did its job.
	ExitOK = 0
	// ExitFailure: a runtime failure (a component failed to start, or
	// failed fatally later; a second signal forced the exit).
	ExitFailure = 1
	// ExitUsage: a usage or configuration error.
	ExitUsage = 2
)

// Main runs the host's command line with args (os.Args[1:]) and returns
// the exit status (ExitOK, ExitFailure, ExitUsage):
//
//	func main() { os.Exit(host.Main(os.Args[1:], host.App("invoices", invoices.Module))) }
//
// The commands are `run`, `config show`, `config validate`, `ctl` (a
// client of a running host's admin API; it exits 3 when denied) and
// `version` (see `--help`).
func Main(args []string, apps ...AppOption) int {
	return execute(args, os.Stdout, os.Stderr, apps...)
}

// execute is Main writing to stdout and stderr.
func execute(args []string, stdout, stderr io.Writer, apps ...AppOption) int {
	o, err := newOptions(apps)
	if err != nil {
		fmt.Fprintf(stderr, "host: %v\n", err)
		return ExitUsage
	}
	if args == nil {
		args = []string{} // cobra reads os.Args for nil
	}
	code := ExitOK
	root := o.commands(args, stdout, stderr, &code)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n%s", o.prog, strings.TrimRight(err.Error(), "\n"), cmd.UsageString())
		return ExitUsage
	}
	return code
}

const configHelp = `Configuration is layered; later layers win:
  declared defaults < --config files in order < environment PLBA_<SECTION>__<KEY> < --set`

// commands builds the command tree. Commands report their exit status
// through code; an error returned to cobra is a usage error.
func (o *options) commands(args []string, stdout, stderr io.Writer, code *int) *cobra.Command {
	version, commit := buildinfo.Resolved()
	root := &cobra.Command{
		Use:   o.prog,
		Short: "run business applications on the plba platform",
		Long: o.prog + ` runs business applications on the plba platform: work flows from
sources through a queue to worker pools and handlers, with health checks,
an admin server, metrics and traces.

Linked applications: ` + o.knownList() + `.

Exit status: 0 clean stop, 1 runtime failure, 2 usage or configuration error.`,
		Version:       fmt.Sprintf("%s (commit %s, %s)", version, commit, buildinfo.GoVersion()),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, rest []string) error {
			if len(rest) > 0 {
				return unknownCommand(cmd, rest[0])
			}
			if len(args) > 0 {
				// Unknown flags are let through at the root (so that a
				// mistyped command followed by flags gets its suggestion):
				// here they are all there is.
				return fmt.Errorf("unknown flag: %s", args[0])
			}
			return errors.New("no command given")
		},
	}
	root.SetVersionTemplate(o.prog + " {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	// `host rn --config x` must say "did you mean run?", not "unknown flag".
	root.FParseErrWhitelist.UnknownFlags = true
	root.CompletionOptions.DisableDefaultCmd = true
	root.SuggestionsMinimumDistance = 2

	var cf configFlags
	addConfigFlags := func(c *cobra.Command, persistent bool) {
		fs := c.Flags()
		if persistent {
			fs = c.PersistentFlags()
		}
		fs.StringArrayVarP(&cf.files, "config", "c", nil, "configuration `FILE` (repeatable; later files win)")
		fs.StringArrayVar(&cf.sets, "set", nil, "override one key, as `key=value` (repeatable; wins over files and environment), e.g. --set log.level=debug")
	}

	run := &cobra.Command{
		Use:   "run",
		Short: "run the host until SIGINT or SIGTERM",
		Long: `Run composes the platform and the applications into one process and runs it
until SIGINT or SIGTERM. On the first signal readiness (/readyz) turns 503,
the host waits lifecycle.shutdown_delay, then stops within
lifecycle.stop_timeout; a second signal exits at once with status 1.

` + o.runDefaultHelp() + `

` + configHelp + `

Exit status: 0 clean stop, 1 runtime failure (a component failed to start
or failed fatally later), 2 usage or configuration error.`,
		Example: "  " + o.prog + " run --config app.yaml\n  " + o.prog + " run --config app.yaml --set log.level=debug --set admin.listen=127.0.0.1:9090",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := o.load(&cf)
			if err != nil {
				*code = o.configError(stderr, nil, err)
				return nil
			}
			*code = o.runHost(cfg, o.configSource(&cf), stderr)
			return nil
		},
	}
	addConfigFlags(run, false)

	cfgCmd := &cobra.Command{
		Use:   "config",
		Short: "show or validate the configuration",
		Long: `Show prints the effective configuration (secrets redacted); validate checks it
and builds the whole host without starting it (nothing is opened).
` + o.runDefaultHelp() + `

` + configHelp + `

Exit status: 0 valid, 2 a configuration problem, 1 any other failure.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknownCommand(cmd, args[0])
			}
			return nil
		},
		RunE: func(*cobra.Command, []string) error {
			return errors.New("config: want a command: show or validate")
		},
	}
	cfgCmd.SuggestionsMinimumDistance = 2
	addConfigFlags(cfgCmd, true)
	cfgCmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "print the effective configuration (secrets redacted)",
		Long: `Show prints the effective configuration as YAML: the host's section and the
sections of the platform and of the composed applications (host.apps), every
value as it takes effect (defaults filled in), secrets redacted.

An incomplete or invalid configuration is printed too, each problem a comment
on its key ("# problem: required"); the problems are then listed on stderr
and the exit status is 2.

Exit status: 0 complete and valid, 2 a configuration problem (printed and
marked), 1 any other failure.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			*code = o.showConfig(&cf, stdout, stderr)
			return nil
		},
	}, &cobra.Command{
		Use:   "validate",
		Short: "check the configuration and build the host without starting it",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := o.load(&cf)
			if err != nil {
				*code = o.configError(stderr, nil, err)
				return nil
			}
			if err := o.validateGraph(cfg); err != nil {
				*code = o.startError(stderr, cfg, err)
				return nil
			}
			files := cfg.Files()
			if len(files) == 0 {
				files = []string{"built-in defaults"}
			}
			fmt.Fprintf(stdout, "configuration valid (%s, digest %s)\n", strings.Join(files, ", "), cfg.Digest())
			return nil
		},
	})

	root.AddCommand(run, cfgCmd, ctlCommand(os.Stdin, stdout, stderr, code), &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintf(stdout, "%s %s\n", o.prog, root.Version)
		},
	})
	return root
}

// runDefaultHelp says what a run without --config runs on.
func (o *options) runDefaultHelp() string {
	if o.defaultName != "" {
		return "Without --config the built-in demo configuration " + o.defaultName + " is used\n(a run says so in its first log line)."
	}
	return "Without --config the built-in defaults are used (a run says so in its first\nlog line)."
}

// unknownCommand is the error for an unknown subcommand of cmd, with
// suggestions ("did you mean run?").
func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return errors.New(msg)
}
