package worker_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

func TestRouteHelpers(t *testing.T) {
	t.Parallel()
	h := task.HandlerFunc(func(context.Context, *task.Task) error { return nil })
	var got struct {
		fx.In
		Routes []task.Route `group:"task.routes"`
	}
	fxtest.New(t,
		fx.NopLogger,
		fx.Provide(worker.AsRoute(func() task.Route { return task.Route{Kind: "a", Handler: h} })),
		worker.SupplyRoute(task.Route{Kind: "b", Handler: h}),
		fx.Populate(&got),
	).RequireStart().RequireStop()
	kinds := []string{got.Routes[0].Kind, got.Routes[1].Kind}
	require.ElementsMatch(t, []string{"a", "b"}, kinds)
}
