package host

import (
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/host/internal/buildinfo"
	"github.com/plba/plba/platform/lifecycle"
)

// composed is the whole host for one configuration.
type composed struct {
	option    fx.Option
	lifecycle lifecycle.Config
	apps      []string // the composed apps' names, in order
}

// compose returns the whole host: the platform and the apps linked with
// App, then those host.apps names, then extra.
func (o *options) compose(cfg *config.Config, extra ...fx.Option) (composed, error) {
	hc := appsConfig{known: o}
	if err := cfg.Decode(Section, &hc); err != nil {
		return composed{}, err
	}
	var lc lifecycle.Config
	if err := cfg.Decode(platform.LifecycleSection, &lc); err != nil {
		return composed{}, err
	}
	version, commit := buildinfo.Resolved()
	opts := []fx.Option{
		platform.Module(cfg, platform.Info{Version: version, Commit: commit}),
		fx.StartTimeout(lc.StartTimeout),
		fx.StopTimeout(lc.StopTimeout),
	}
	var names []string
	add := func(a app) {
		for _, n := range names {
			if n == a.name {
				return
			}
		}
		names = append(names, a.name)
		opts = append(opts, a.module)
	}
	for _, a := range o.apps {
		if !a.optional {
			add(a)
		}
	}
	for _, n := range hc.Apps {
		a, _ := o.lookup(n) // Validate checked the name
		add(a)
	}
	opts = append(opts, o.extra...)
	opts = append(opts, extra...)
	return composed{option: fx.Options(opts...), lifecycle: lc, apps: names}, nil
}

// validateGraph builds the whole host graph without starting it: every
// configuration section a composed module uses is decoded and validated
// (constructors run; they open nothing, which is what start hooks are
// for).
func (o *options) validateGraph(cfg *config.Config) error {
	var comp *lifecycle.Registry
	c, err := o.compose(cfg, fx.NopLogger, fx.Populate(&comp))
	if err != nil {
		return err
	}
	var p provided
	if err := fx.New(p.option(), c.option).Err(); err != nil {
		return err
	}
	return o.builtChecks(cfg, p.sections, c.apps, c.lifecycle, comp)
}

// announce logs, as the host's first line, which configuration and apps
// it runs.
func announce(source string, apps []string, warnings []warning) fx.Option {
	return fx.Invoke(func(l *zap.Logger) {
		version, commit := buildinfo.Resolved()
		if len(apps) == 0 {
			apps = []string{}
		}
		l = l.Named("host")
		l.Info("host starting with "+source,
			zap.Strings("apps", apps), zap.String("version", version), zap.String("commit", commit))
		for _, w := range warnings {
			l.Warn(w.msg, w.fields...)
		}
	})
}

// warning is a line the host logs after its announcement: configuration
// that is valid but does not do what it seems to.
type warning struct {
	msg    string
	fields []zap.Field
}
