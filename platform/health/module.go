package health

import (
	"context"

	"go.uber.org/fx"

	"github.com/plba/plba/platform/lifecycle"
)

// Params are what the health module takes from the graph.
type Params struct {
	fx.In
	Options    Options `optional:"true"`
	Components *lifecycle.Registry
	Checks     []Check `group:"health.checks"`
	Lifecycle  fx.Lifecycle
}

// New builds the registry from the contributed checks and ties its check
// loops to the fx lifecycle (started on start, stopped on stop).
func New(p Params) (*Registry, error) {
	r, err := NewRegistry(p.Options, p.Components, p.Checks)
	if err != nil {
		return nil, err
	}
	p.Lifecycle.Append(fx.Hook{
		OnStart: func(context.Context) error { r.Start(); return nil },
		OnStop:  func(context.Context) error { r.Stop(); return nil },
	})
	return r, nil
}

// Module provides the health *Registry.
var Module = fx.Module("health", fx.Provide(New))
