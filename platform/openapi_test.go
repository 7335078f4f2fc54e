package platform_test

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/ui"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/control"
)

// TestOpenAPIMatchesRoutes checks the OpenAPI document against the routes
// the whole platform's admin server really registers (Server.Routes), both
// ways: every operation it describes is a route with the same method,
// path and role (x-role), and every route is described. The web UI's
// routes (ui.Prefix) answer HTML pages, not the JSON API: the document
// leaves them out (the served one lists them with the contributed routes).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(config.Options{Environ: []string{}, Sets: []string{"admin.listen=127.0.0.1:0", "log.level=error"}})
	require.NoError(t, err)
	var srv *admin.Server
	app := fxtest.New(t, platform.Module(cfg, platform.Info{}), fx.Populate(&srv))
	app.RequireStart()
	defer app.RequireStop()

	registered := map[string]string{}
	for _, r := range srv.Routes() {
		method, path, ok := strings.Cut(r.Pattern, " ")
		require.True(t, ok, "pattern %q has a method", r.Pattern)
		if strings.HasPrefix(path, ui.Prefix) {
			continue
		}
		registered[method+" "+strings.TrimSuffix(path, "{$}")] = string(r.Role)
	}

	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			XRole string `json:"x-role"`
		} `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(control.OpenAPI(), &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)
	described := map[string]string{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method == "parameters" {
				continue
			}
			described[strings.ToUpper(method)+" "+path] = op.XRole
		}
	}
	require.Equal(t, sortedPairs(registered), sortedPairs(described), "routes (left) and the OpenAPI document (right) disagree")
}

// The document the host serves also describes the routes applications
// contribute (their role and summary), so that it and the routes the
// admin server registers agree both ways in a host with applications.
func TestServedOpenAPIDescribesContributedRoutes(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(config.Options{Environ: []string{}, Sets: []string{"admin.listen=127.0.0.1:0", "log.level=error"}})
	require.NoError(t, err)
	var srv *admin.Server
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	app := fxtest.New(t, platform.Module(cfg, platform.Info{}), fx.Populate(&srv),
		fx.Provide(admin.AsRoute(func() admin.Route {
			return admin.Route{Pattern: "GET /admin/v1/invoices/{number}", Summary: "one invoice", Handler: ok}
		})),
		fx.Provide(admin.AsRoute(func() admin.Route {
			return admin.Route{Pattern: "POST /hooks/payments", Role: admin.RolePublic, Handler: ok}
		})))
	app.RequireStart()
	defer app.RequireStop()

	resp, err := http.Get("http://" + srv.Addr() + control.Prefix + "/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var doc struct {
		Paths map[string]map[string]struct {
			XRole      string `json:"x-role"`
			Summary    string `json:"summary"`
			Parameters []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	registered, described := map[string]string{}, map[string]string{}
	for _, r := range srv.Routes() {
		method, path, _ := strings.Cut(r.Pattern, " ")
		registered[method+" "+strings.TrimSuffix(path, "{$}")] = string(r.Role)
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			described[strings.ToUpper(method)+" "+path] = op.XRole
		}
	}
	require.Equal(t, sortedPairs(registered), sortedPairs(described), "routes (left) and the served document (right) disagree")
	inv := doc.Paths["/admin/v1/invoices/{number}"]["get"]
	require.Equal(t, "one invoice", inv.Summary)
	require.Equal(t, "viewer", inv.XRole)
	require.Len(t, inv.Parameters, 1)
	require.Equal(t, "number", inv.Parameters[0].Name)
	require.Equal(t, "path", inv.Parameters[0].In)
	hook := doc.Paths["/hooks/payments"]["post"]
	require.Equal(t, "public", hook.XRole)
	require.Equal(t, "contributed by an application", hook.Summary)
}

func sortedPairs(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+" role="+v)
	}
	sort.Strings(out)
	return out
}
