package host

import (
	"slices"
	"strings"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/config"
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
