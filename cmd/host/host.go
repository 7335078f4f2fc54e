package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"go.uber.org/fx"

	"github.com/plba/plba/cmd/host/internal/buildinfo"
	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
)

// HostConfig is the "host" configuration section.
type HostConfig struct {
	// Apps lists the applications to compose into the host, by name (see
	// the apps table in apps.go). Empty runs the platform alone.
	Apps []string `koanf:"apps"`
}

// Validate checks that every app named is known, and named once.
func (c HostConfig) Validate() error {
	var ps config.Problems
	for i, a := range c.Apps {
		key := fmt.Sprintf("apps[%d]", i)
		if _, ok := knownApps[a]; !ok {
			ps.Add(key, "unknown app %q (known: %s)", a, strings.Join(appNames(), ", "))
		} else if j := slices.Index(c.Apps, a); j < i {
			ps.Add(key, "app %q is already listed (apps[%d])", a, j)
		}
	}
	return ps.Err()
}

var hostSection = config.Declare("host", HostConfig{})

// knownApps maps an application's name to its fx option.
var knownApps = map[string]func() fx.Option{}

func appNames() []string {
	names := make([]string, 0, len(knownApps))
	for n := range knownApps {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// compose returns the whole host: the platform and the configured apps.
func compose(cfg *config.Config, extra ...fx.Option) (fx.Option, lifecycle.Config, error) {
	var hc HostConfig
	if err := cfg.Decode(hostSection.Name, &hc); err != nil {
		return nil, lifecycle.Config{}, err
	}
	var lc lifecycle.Config
	if err := cfg.Decode(platform.LifecycleSection, &lc); err != nil {
		return nil, lifecycle.Config{}, err
	}
	opts := []fx.Option{
		platform.Module(cfg, platform.Info{Version: buildinfo.Version, Commit: buildinfo.Commit}),
		fx.StartTimeout(lc.StartTimeout),
		fx.StopTimeout(lc.StopTimeout),
	}
	for _, name := range hc.Apps {
		opts = append(opts, knownApps[name]())
	}
	opts = append(opts, extra...)
	return fx.Options(opts...), lc, nil
}

// validateGraph builds the whole host graph without starting it: every
// configuration section a composed module uses is decoded and validated
// (constructors run; they open nothing, which is what start hooks are
// for: TestValidateTouchesNothing).
func validateGraph(cfg *config.Config) error {
	opt, _, err := compose(cfg, fx.NopLogger)
	if err != nil {
		return err
	}
	return fx.New(opt).Err()
}

// runHost starts the host, blocks until a signal or a fatal component
// failure, stops it and returns the exit status.
func runHost(cfg *config.Config, stderr io.Writer) int {
	var (
		hr   *health.Registry
		comp *lifecycle.Registry
	)
	opt, lc, err := compose(cfg, fx.Populate(&hr, &comp))
	if err != nil {
		return configError(stderr, err)
	}
	app := fx.New(opt)
	if err := app.Err(); err != nil {
		return startError(stderr, err)
	}

	// Listen for SIGINT and SIGTERM (and a fatal component's shutdown)
	// before starting: a signal that arrives while the host starts must
	// not kill it with the default action. A signal during start abandons
	// the start at once instead of waiting for a component that hangs
	// (fx then returns without running the stop hooks of the components
	// that had started: they end with the process, as after a crash,
	// which every store recovers from); a second one exits at once.
	wait := app.Wait()
	startCtx, cancel := context.WithTimeout(context.Background(), lc.StartTimeout)
	interrupted := interruptStart(cancel, stderr)
	err = app.Start(startCtx)
	sig := interrupted()
	cancel()
	if err != nil {
		if sig != nil {
			fmt.Fprintf(stderr, "host: %s received while starting: start abandoned (the components already started end with the process)\n", sig)
			return exitFailure
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("start timed out after %s%s: %w", lc.StartTimeout, stuck(comp), err)
		}
		return startError(stderr, fmt.Errorf("start failed: %w", err))
	}

	// A component failing with the stop policy arrives here too, with exit
	// status 1.
	sd := <-wait
	force := make(chan os.Signal, 1)
	signal.Notify(force, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(force)
	hr.SetShuttingDown()
	code := sd.ExitCode
	if s, failed := comp.AnyFailed(); failed && code != exitOK {
		fmt.Fprintf(stderr, "host: component %s failed: %s\n", s.Name, s.LastError)
	} else {
		fmt.Fprintf(stderr, "host: %s received, stopping (send again to force exit)\n", sd.Signal)
		if lc.ShutdownDelay > 0 {
			select {
			case <-time.After(lc.ShutdownDelay):
			case <-force:
				fmt.Fprintln(stderr, "host: second signal, exiting now")
				return exitFailure
			}
		}
	}

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), lc.StopTimeout)
		defer cancel()
		stopped <- app.Stop(ctx)
	}()
	select {
	case err := <-stopped:
		if err != nil {
			fmt.Fprintf(stderr, "host: stop: %s\n", oneLine(err))
			return exitFailure
		}
	case <-force:
		fmt.Fprintln(stderr, "host: second signal, exiting now")
		return exitFailure
	}
	return code
}

// interruptStart watches for SIGINT and SIGTERM while the host starts:
// the first calls abandon (the start context's cancel), a second exits
// the process with status 1. The returned function ends the watch and
// reports the first signal, if any.
func interruptStart(abandon context.CancelFunc, stderr io.Writer) func() os.Signal {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	got := make(chan os.Signal, 1)
	go func() { // owned: ends when the returned function is called
		var first os.Signal
		defer func() { got <- first }()
		for {
			select {
			case s := <-sigs:
				if first != nil {
					fmt.Fprintln(stderr, "host: second signal, exiting now")
					os.Exit(exitFailure)
				}
				first = s
				abandon()
			case <-done:
				return
			}
		}
	}()
	return func() os.Signal {
		signal.Stop(sigs)
		close(done)
		return <-got
	}
}

// stuck names the components that had not finished starting.
func stuck(comp *lifecycle.Registry) string {
	if comp == nil {
		return ""
	}
	var names []string
	for _, s := range comp.Snapshot() {
		if s.State == lifecycle.Starting || (s.State == lifecycle.Failed && strings.Contains(s.LastError, "deadline")) {
			names = append(names, s.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return " (waiting for " + strings.Join(names, ", ") + ")"
}
