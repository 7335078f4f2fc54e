package platform_test

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/control"
)

// TestOpenAPIMatchesRoutes checks the OpenAPI document against the routes
// the whole platform's admin server really registers (Server.Routes), both
// ways: every operation it describes is a route with the same method,
// path and role (x-role), and every route is described.
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

func sortedPairs(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+" role="+v)
	}
	sort.Strings(out)
	return out
}
