package admin_test

import (
	"context"
	"net/http"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
)

// A module whose routes depend on its configuration contributes them as a
// slice with AsRoutes: each joins the "admin.routes" group, and a nil
// slice (a feature that is off) contributes none.
func ExampleAsRoutes() {
	type config struct{ Debug bool }
	newRoutes := func(cfg config) []admin.Route {
		if !cfg.Debug {
			return nil
		}
		return []admin.Route{{
			Pattern: "GET /admin/v1/debug/ping",
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				admin.WriteJSON(w, http.StatusOK, map[string]string{"debug": "pong"})
			}),
		}}
	}
	cfg := admin.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"

	var srv *admin.Server
	app := fx.New(
		fx.NopLogger,
		fx.Supply(cfg, config{Debug: true}, admin.StatusInfo{Version: "1.0.0"}, zap.NewNop(), lifecycle.NewRegistry(nil, nil)),
		health.Module,
		admin.Module,
		fx.Provide(admin.AsRoutes(newRoutes)),
		fx.Populate(&srv),
	)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = app.Stop(ctx) }()

	printGet("http://" + srv.Addr() + "/admin/v1/debug/ping")
	// Output:
	// 200 {
	//   "debug": "pong"
	// }
}
