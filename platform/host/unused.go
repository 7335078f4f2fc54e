package host

import (
	"errors"
	"maps"
	"slices"
	"strings"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/lifecycle"
)

// provided collects the sections the graph's modules provide
// (config.ReportProvided); put its option first among fx.New's.
type provided struct{ sections []string }

func (p *provided) option() fx.Option {
	return config.ReportProvided(func(names []string) { p.sections = names })
}

// unusedSections returns a problem for every section a file, the
// environment or --set filled that no composed module uses (an app linked
// but not listed in host.apps): its settings would be ignored without a
// word. The host's own section is read by the host itself, and a section
// only the built-in configuration sets (the demo's mailorder section on a
// host that composes loadgen alone) is left alone: nobody wrote it.
func (o *options) unusedSections(cfg *config.Config, provided, apps []string) error {
	var ps config.Problems
	for _, name := range cfg.Sections() {
		if name == Section || slices.Contains(provided, name) || !cfg.IsSet(name) {
			continue
		}
		if src, _ := cfg.SourceOf(name); o.defaultName != "" && src == o.defaultName {
			continue
		}
		list := strings.Join(apps, ", ")
		if list == "" {
			list = "none"
		}
		ps.Add(name, "set, but no composed application uses this section (apps: %s): add its application to host.apps or remove the section", list)
	}
	return ps.Err()
}

// builtChecks returns the problems found once the host's graph is built:
// the sections no composed module uses (unusedSections) and the
// lifecycle policies that name no component (unknownPolicies).
func (o *options) builtChecks(cfg *config.Config, provided, apps []string, lc lifecycle.Config, comp *lifecycle.Registry) error {
	var ps config.Problems
	for _, err := range []error{o.unusedSections(cfg, provided, apps), unknownPolicies(lc, comp)} {
		var ce *config.Error
		if errors.As(err, &ce) {
			ps = append(ps, ce.Problems...)
		}
	}
	return ps.Err()
}

// unknownPolicies returns a problem for every lifecycle.policies entry
// that names no component of the built host (a misspelt source): the
// component meant would keep its default policy without a word, a source
// meant to stay up degraded stopping the host, or the reverse; and for
// every entry naming a component that never fails after start
// (lifecycle.NeverFails: the pools, the queue backend, an application's
// such as the mailorder store), whose policy
// would have no effect, a pool meant to stop the host staying up. The
// components are those registered while the graph was built, which is
// when the platform's and the applications' constructors register them.
func unknownPolicies(lc lifecycle.Config, comp *lifecycle.Registry) error {
	if comp == nil || len(lc.Policies) == 0 {
		return nil
	}
	names := comp.Names()
	list := strings.Join(names, ", ")
	if list == "" {
		list = "none"
	}
	var ps config.Problems
	for _, name := range slices.Sorted(maps.Keys(lc.Policies)) {
		switch {
		case !slices.Contains(names, name):
			ps.Add(platform.LifecycleSection+".policies."+name, "no component %q in this host (components: %s)", name, list)
		case comp.NeverFails(name):
			ps.Add(platform.LifecycleSection+".policies."+name,
				"component %q never fails after start (its trouble shows as degraded or in the health checks; a failed start fails the host's start): a policy has no effect", name)
		}
	}
	return ps.Err()
}

// configWarnings returns what the host warns of at start: a
// queue.jetstream section set while queue.backend is memory. Its settings
// are not used, and the tasks are kept in memory, lost when the host
// stops; a host meant for JetStream whose backend key was forgotten would
// otherwise start without a word. It is no configuration error: running
// a configured host on memory for a while (--set queue.backend=memory) is
// legitimate. The built-in demo's own section is left alone.
func (o *options) configWarnings(cfg *config.Config) []warning {
	var q platform.QueueConfig
	if err := cfg.Decode(platform.QueueSection, &q); err != nil || q.Backend != platform.BackendMemory ||
		!cfg.IsSet(platform.JetStreamSection) {
		return nil
	}
	src, _ := cfg.SourceOf(platform.JetStreamSection)
	if o.defaultName != "" && src == o.defaultName {
		return nil
	}
	return []warning{{
		msg: platform.JetStreamSection + " is set but " + platform.QueueSection + ".backend is " + platform.BackendMemory +
			": its settings are not used, and tasks are kept in memory, lost when the host stops; set " +
			platform.QueueSection + ".backend: " + platform.BackendJetStream + " to use them",
		fields: []zap.Field{zap.String("source", src)},
	}}
}
