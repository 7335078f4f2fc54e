package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/fx"

	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
)

// runHost starts the host, blocks until a signal or a fatal component
// failure, stops it and returns the exit status.
func (o *options) runHost(cfg *config.Config, source string, stderr io.Writer) int {
	var (
		hr   *health.Registry
		comp *lifecycle.Registry
	)
	c, err := o.compose(cfg, fx.Populate(&hr, &comp))
	if err != nil {
		return o.configError(stderr, cfg, err)
	}
	// The announcement is invoked first: fx runs invokes in order, so it is
	// the first line the host logs (after the logger's own construction).
	var p provided
	app := fx.New(p.option(), announce(source, c.apps, o.configWarnings(cfg)), c.option)
	if err := app.Err(); err != nil {
		return o.startError(stderr, cfg, err)
	}
	if err := o.builtChecks(cfg, p.sections, c.apps, c.lifecycle, comp); err != nil {
		return o.configError(stderr, cfg, err)
	}
	lc := c.lifecycle
	// Not ready until the start has returned: the last start hooks may
	// still run after every component is up.
	hr.SetStarting(true)

	// Listen for SIGINT and SIGTERM (and a fatal component's shutdown)
	// before starting: a signal that arrives while the host starts must
	// not kill it with the default action. A signal during start abandons
	// the start at once instead of waiting for a component that hangs
	// (fx then returns without running the stop hooks of the components
	// that had started: they end with the process, as after a crash,
	// which every store recovers from); a second one exits at once.
	wait := app.Wait()
	startCtx, cancel := context.WithTimeout(context.Background(), lc.StartTimeout)
	interrupted := o.interruptStart(cancel, stderr)
	err = app.Start(startCtx)
	sig := interrupted()
	cancel()
	if err != nil {
		if sig != nil {
			fmt.Fprintf(stderr, "%s: %s received while starting: start abandoned (the components already started end with the process)\n", o.prog, sig)
			return ExitFailure
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("start timed out after %s%s: %w", lc.StartTimeout, stuck(comp), err)
		}
		return o.startError(stderr, cfg, fmt.Errorf("start failed: %w", err))
	}

	hr.SetStarting(false)

	// A component failing with the stop policy arrives here too, with exit
	// status 1; it is named (not another component that failed under the
	// degrade policy and kept the host up).
	sd := <-wait
	force := make(chan os.Signal, 1)
	signal.Notify(force, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(force)
	hr.SetShuttingDown()
	code := sd.ExitCode
	if s, failed := comp.FatalFailure(); failed && code != ExitOK {
		fmt.Fprintf(stderr, "%s: component %s failed: %s\n", o.prog, s.Name, s.LastError)
	} else {
		fmt.Fprintf(stderr, "%s: %s received, stopping (send again to force exit)\n", o.prog, sd.Signal)
		if lc.ShutdownDelay > 0 {
			select {
			case <-time.After(lc.ShutdownDelay):
			case <-force:
				fmt.Fprintf(stderr, "%s: second signal, exiting now\n", o.prog)
				return ExitFailure
			}
		}
	}

	stopped := make(chan error, 1)
	began := time.Now()
	go func() { // owned: the select below waits for it unless forced out
		ctx, cancel := context.WithTimeout(context.Background(), lc.StopTimeout)
		defer cancel()
		stopped <- app.Stop(ctx)
	}()
	select {
	case err := <-stopped:
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				// Each stage gives up by its share of the time (sources,
				// then pools, then the backend): the host may end well
				// before the whole of it, and says when.
				err = fmt.Errorf("stop timed out: gave up after %s of its %s (lifecycle.stop_timeout)%s: %w",
					time.Since(began).Round(time.Millisecond), lc.StopTimeout, stopping(comp), err)
			}
			fmt.Fprintf(stderr, "%s: stop: %s\n", o.prog, oneLine(err))
			return ExitFailure
		}
	case <-force:
		fmt.Fprintf(stderr, "%s: second signal, exiting now\n", o.prog)
		return ExitFailure
	}
	return code
}

// interruptStart watches for SIGINT and SIGTERM while the host starts:
// the first calls abandon (the start context's cancel), a second exits
// the process with status 1. The returned function ends the watch and
// reports the first signal, if any.
func (o *options) interruptStart(abandon context.CancelFunc, stderr io.Writer) func() os.Signal {
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
					fmt.Fprintf(stderr, "%s: second signal, exiting now\n", o.prog)
					os.Exit(ExitFailure)
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

// stuck names the components that the start was waiting for: those whose
// start had begun and not ended, and those whose start gave up at the
// deadline. Components whose turn had not come are in state Starting too;
// they are not named.
func stuck(comp *lifecycle.Registry) string {
	if comp == nil {
		return ""
	}
	names := comp.StartsUnderway()
	for _, s := range comp.Snapshot() {
		if s.State == lifecycle.Failed && strings.Contains(s.LastError, "deadline") && !slices.Contains(names, s.Name) {
			names = append(names, s.Name)
		}
	}
	slices.Sort(names)
	return waitingFor(names)
}

// stopping names the components that the stop was waiting for: those
// whose stop had begun and not ended (lifecycle.Registry.StopsUnderway).
// Components whose turn had not come are not named.
func stopping(comp *lifecycle.Registry) string {
	if comp == nil {
		return ""
	}
	return waitingFor(comp.StopsUnderway())
}

// waitingFor is the note a start or stop timeout adds for names: empty
// when there are none.
func waitingFor(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (waiting for " + strings.Join(names, ", ") + ")"
}
