package host

import (
	"slices"
	"strings"

	"go.uber.org/fx"

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
