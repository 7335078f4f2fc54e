package host

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"go.uber.org/fx"

	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/lifecycle"
)

// showConfig prints the effective configuration of the composed host:
// the host's own section and every section the platform and the composed
// apps provide (not those of apps linked but not composed), each value as
// it takes effect (defaults filled in). It prints an incomplete
// configuration too, every problem a comment on its key ("# problem:
// required"); it then lists the problems on stderr and returns
// ExitUsage, as validate does, so that a script cannot mistake a marked
// configuration for a valid one.
func (o *options) showConfig(cf *configFlags, stdout, stderr io.Writer) int {
	cfg, err := o.loadWith(cf, true)
	if cfg == nil {
		return o.configError(stderr, nil, err)
	}
	var problems []config.Problem
	addProblems := func(err error) {
		var ce *config.Error
		if errors.As(err, &ce) {
			problems = append(problems, ce.Problems...)
		}
	}
	addProblems(err)
	sections := []string{Section}
	var graphErr error
	var comp *lifecycle.Registry
	if c, err := o.compose(cfg, fx.NopLogger, fx.Populate(&comp)); err != nil {
		addProblems(err)
		sections = cfg.Sections() // the apps are unknown: show everything
	} else {
		var p provided
		graphErr = fx.New(p.option(), c.option).Err()
		sections = append(sections, p.sections...)
		if graphErr == nil {
			addProblems(o.builtChecks(cfg, p.sections, c.apps, c.lifecycle, comp))
		}
	}
	slices.Sort(sections)
	sections = slices.Compact(sections)
	addProblems(cfg.Check(sections...))
	if graphErr != nil && isConfigProblem(graphErr) {
		addProblems(graphErr)
		graphErr = nil
	}
	out, err := cfg.Show(sections, problems)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", o.prog, oneLine(err))
		return ExitFailure
	}
	_, _ = stdout.Write(out)
	if len(problems) > 0 {
		return o.configError(stderr, cfg, &config.Error{Problems: dedupeProblems(problems)})
	}
	if graphErr != nil {
		fmt.Fprintf(stderr, "%s: the configuration is complete, but building the host failed: %s\n", o.prog, oneLine(graphErr))
		return ExitFailure
	}
	return ExitOK
}

func dedupeProblems(ps []config.Problem) []config.Problem {
	var out []config.Problem
	for _, p := range ps {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
