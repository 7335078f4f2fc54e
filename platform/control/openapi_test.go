package control_test

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/worker"
)

// TestOpenAPIMatchesRoutes checks the OpenAPI document against the
// routes, both ways: every operation it describes is a route with the
// same method, path and role (x-role), and every route is described.
// The routes are this package's and the admin server's own (status, the
// log level).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	b := memory.New(memory.Options{})
	rt, err := worker.New(worker.Params{Backend: b})
	require.NoError(t, err)
	api := control.New(control.Params{Backend: b, Runtime: rt})
	routes := append(api.Routes(), admin.LogLevelRoutes(zap.NewAtomicLevel(), nil)...)
	routes = append(routes, admin.Route{Pattern: "GET " + control.Prefix + "/status"})

	registered := map[string]string{}
	for _, r := range routes {
		method, path, ok := strings.Cut(r.Pattern, " ")
		require.True(t, ok, "pattern %q has a method", r.Pattern)
		path = strings.TrimSuffix(path, "{$}")
		role := r.Role
		if role == "" {
			role = admin.RoleViewer
		}
		registered[method+" "+path] = string(role)
	}

	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			XRole string `json:"x-role"`
		} `json:"paths"`
	}
	rec := &recorder{header: http.Header{}}
	for _, r := range api.Routes() {
		if r.Pattern == "GET "+control.Prefix+"/openapi.json" {
			r.Handler.ServeHTTP(rec, nil)
		}
	}
	require.Equal(t, "application/json", rec.header.Get("Content-Type"))
	require.NoError(t, json.Unmarshal(rec.body, &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)
	described := map[string]string{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
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

type recorder struct {
	header http.Header
	body   []byte
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(int)             {}
func (r *recorder) Write(p []byte) (int, error) { r.body = append(r.body, p...); return len(p), nil }
