package source_test

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/fx"

	"github.com/plba/plba/platform/source"
)

// A module whose sources depend on its configuration contributes them as
// a slice with AsSources: each joins the "task.sources" group, and a nil
// slice contributes none. A value group keeps no order.
func ExampleAsSources() {
	type config struct{ Inboxes []string }
	newSources := func(cfg config) []source.Source {
		var ss []source.Source
		for _, box := range cfg.Inboxes {
			ss = append(ss, source.Poll(box, time.Minute, 0, func(context.Context, source.Emitter) error { return nil }))
		}
		return ss
	}
	var in struct {
		fx.In
		Sources []source.Source `group:"task.sources"`
	}
	app := fx.New(
		fx.NopLogger,
		fx.Supply(config{Inboxes: []string{"orders", "returns"}}),
		fx.Provide(source.AsSources(newSources)),
		fx.Provide(source.AsSources(func() []source.Source { return nil })), // a feature that is off
		fx.Populate(&in),
	)
	if err := app.Err(); err != nil {
		panic(err)
	}
	for _, s := range in.Sources {
		fmt.Println(s.Name())
	}
	// Unordered output:
	// orders
	// returns
}
