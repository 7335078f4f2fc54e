package admin_test

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
)

// printGet GETs url and prints the status code and body.
func printGet(url string) {
	resp, err := http.Get(url)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d %s", resp.StatusCode, body)
}

// A module contributes a route to the admin server with AsRoute; the
// server starts and stops with the host.
func ExampleAsRoute() {
	newHelloRoute := func() admin.Route {
		return admin.Route{
			Pattern: "GET /admin/v1/hello/{name}",
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				admin.WriteJSON(w, http.StatusOK, map[string]string{"hello": r.PathValue("name")})
			}),
		}
	}
	cfg := admin.DefaultConfig()
	cfg.Listen = "127.0.0.1:0" // a free port; Server.Addr reports it

	var srv *admin.Server
	app := fx.New(
		fx.NopLogger,
		fx.Supply(cfg, admin.StatusInfo{Version: "1.0.0"}, zap.NewNop(), lifecycle.NewRegistry(nil, nil)),
		health.Module,
		admin.Module,
		fx.Provide(admin.AsRoute(newHelloRoute)),
		fx.Populate(&srv),
	)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = app.Stop(ctx) }()

	printGet("http://" + srv.Addr() + "/admin/v1/hello/plba")
	printGet("http://" + srv.Addr() + "/livez")
	// Output:
	// 200 {
	//   "hello": "plba"
	// }
	// 200 ok
}

// Without fx: NewServer with the routes, Start to listen, Stop to shut
// down gracefully.
func ExampleNewServer() {
	ping := admin.Route{Pattern: "GET /admin/v1/ping", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "pong\n")
	})}
	cfg := admin.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	srv, err := admin.NewServer(cfg, nil, admin.StatusInfo{Version: "1.0.0"}, nil, nil, []admin.Route{ping})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := srv.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = srv.Stop(ctx) }()

	printGet("http://" + srv.Addr() + "/admin/v1/ping")
	// Output:
	// 200 pong
}
