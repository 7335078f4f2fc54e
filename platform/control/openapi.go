package control

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/admin"
)

// openAPIDoc is the OpenAPI 3.1 document of the admin API: every route of
// this package and the admin server's own (status, log level, audit,
// session, probes, metrics). Each operation names its role in x-role.
// platform's TestOpenAPIMatchesRoutes compares it, both ways, with the
// routes the platform's admin server really registers (Server.Routes).
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3.1 document of the platform's admin API
// (without the routes applications contribute: see API.Describe).
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

// served is the document GET /admin/v1/openapi.json answers: openAPIDoc,
// plus the routes of the admin server that it does not describe (an
// application's), built once on first request.
type served struct {
	mu     sync.Mutex
	routes func() []admin.Route
	once   sync.Once
	doc    []byte
}

// Describe makes the served OpenAPI document describe, beside the
// platform's routes, every other route that routes returns (the admin
// server's Server.Routes: an application's pages and webhooks), with its
// method, path, path parameters, role (x-role) and Route.Summary, under
// the tag "application". Module calls it with the admin server's routes.
func (a *API) Describe(routes func() []admin.Route) {
	a.doc.mu.Lock()
	a.doc.routes = routes
	a.doc.mu.Unlock()
}

func (a *API) openAPI(w http.ResponseWriter, _ *http.Request) error {
	a.doc.once.Do(func() {
		a.doc.mu.Lock()
		routes := a.doc.routes
		a.doc.mu.Unlock()
		a.doc.doc = openAPIDoc
		if routes != nil {
			if b, err := withRoutes(openAPIDoc, routes()); err == nil {
				a.doc.doc = b
			} else {
				a.log.Warn("control: the OpenAPI document without the contributed routes", zap.Error(err))
			}
		}
	})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(a.doc.doc)
	return nil
}

// pathParam is a ServeMux wildcard: {name} or {name...}.
var pathParam = regexp.MustCompile(`\{([A-Za-z0-9_]+)(\.\.\.)?\}`)

// withRoutes returns doc with an operation for every route it does not
// describe yet.
func withRoutes(doc []byte, routes []admin.Route) ([]byte, error) {
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	paths, _ := d["paths"].(map[string]any)
	if paths == nil {
		paths = map[string]any{}
		d["paths"] = paths
	}
	for _, r := range routes {
		method, path, ok := strings.Cut(r.Pattern, " ")
		if !ok {
			continue // a pattern without a method answers every method: not described
		}
		path = strings.TrimSuffix(path, "{$}")
		ops, _ := paths[path].(map[string]any)
		if ops == nil {
			ops = map[string]any{}
			paths[path] = ops
		}
		m := strings.ToLower(method)
		if _, done := ops[m]; done {
			continue
		}
		summary := r.Summary
		if summary == "" {
			summary = "contributed by an application"
		}
		params := []any{}
		for _, p := range pathParam.FindAllStringSubmatch(path, -1) {
			params = append(params, map[string]any{"name": p[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		role := r.Role
		if role == "" {
			role = admin.RoleViewer
		}
		op := map[string]any{"summary": summary, "x-role": string(role), "tags": []any{"application"}, "parameters": params,
			"responses": map[string]any{"default": map[string]any{"description": "the application's answer"}}}
		if role == admin.RolePublic {
			op["security"] = []any{}
		}
		ops[m] = op
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
