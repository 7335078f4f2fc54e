package health_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"go.uber.org/fx"

	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
)

// Readiness follows the gating checks only: a failing non-gating check is
// reported but keeps the host ready; a failing gating one does not.
func ExampleNewRegistry() {
	var storeDown atomic.Bool
	checks := []health.Check{
		{Name: "store", Gating: true, Func: func(context.Context) error {
			if storeDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		}},
		{Name: "mail", Func: func(context.Context) error { return errors.New("mail server unreachable") }},
	}
	r, err := health.NewRegistry(health.Options{}, nil, checks)
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Ready()) // no check has run yet: not ready

	r.RunAll(context.Background()) // a host calls Start instead: checks run in the background
	for _, res := range r.Results() {
		fmt.Printf("%s: healthy=%t gating=%t last_error=%q\n", res.Name, res.Healthy, res.Gating, res.LastError)
	}
	fmt.Println(r.Ready())

	storeDown.Store(true)
	r.RunAll(context.Background())
	fmt.Println(r.Ready())
	fmt.Println(r.Live()) // checks never drive liveness
	// Output:
	// false check store: not checked yet
	// mail: healthy=false gating=false last_error="mail server unreachable"
	// store: healthy=true gating=true last_error=""
	// true ok
	// false check store: connection refused
	// true ok
}

// The probes served by Mount: components drive liveness and readiness
// next to the checks, and SetShuttingDown turns readiness off for good.
func ExampleRegistry_Mount() {
	comps := lifecycle.NewRegistry(nil, nil)
	pool := comps.MustRegister("pool/default", lifecycle.StayDegraded)
	r, err := health.NewRegistry(health.Options{}, comps, nil)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	r.Mount(mux)
	probe := func(path string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		fmt.Println(path, rec.Code, strings.TrimSpace(rec.Body.String()))
	}

	probe("/readyz")
	pool.Set(lifecycle.Running, nil)
	probe("/readyz")
	pool.Fail(errors.New("backend gone"))
	probe("/livez")
	pool.Set(lifecycle.Running, nil)
	r.SetShuttingDown()
	probe("/readyz")
	probe("/livez")
	// Output:
	// /readyz 503 component pool/default is starting
	// /readyz 200 ok
	// /livez 503 component pool/default failed: backend gone
	// /readyz 503 shutting down
	// /livez 200 ok
}

// A module contributes a check to the "health.checks" group with AsCheck;
// the health Module builds the registry from the whole group.
func ExampleAsCheck() {
	newStoreCheck := func() health.Check {
		return health.Check{Name: "store", Gating: true, Func: func(context.Context) error { return nil }}
	}
	var r *health.Registry
	app := fx.New(
		fx.NopLogger,
		fx.Supply(lifecycle.NewRegistry(nil, nil)),
		health.Module,
		fx.Provide(health.AsCheck(newStoreCheck)),
		health.SupplyCheck(health.Check{Name: "cache", Func: func(context.Context) error { return nil }}),
		fx.Populate(&r),
	)
	if err := app.Err(); err != nil {
		panic(err)
	}
	// The app is not started, so the check loops are not running: run the
	// checks once by hand.
	r.RunAll(context.Background())
	for _, res := range r.Report().Checks {
		fmt.Printf("%s: healthy=%t gating=%t\n", res.Name, res.Healthy, res.Gating)
	}
	// Output:
	// cache: healthy=true gating=false
	// store: healthy=true gating=true
}
