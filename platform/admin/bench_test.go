package admin_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/auth"
)

// BenchmarkRequest measures what authentication adds to a request served
// in process: a viewer route with auth off, with a bearer token (one
// SHA-256 and a constant-time compare per configured token), and a state-
// changing route with its audit entry (log at info to a no-op logger,
// ring).
func BenchmarkRequest(b *testing.B) {
	routes := []admin.Route{
		{Pattern: "GET /admin/v1/x", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })},
		{Pattern: "POST /admin/v1/x", Role: admin.RoleOperator, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			admin.Audit(r, admin.AuditEntry{Action: "x.poke", Target: "x/1", Params: map[string]any{"n": 1}})
			w.WriteHeader(http.StatusNoContent)
		})},
	}
	secured := local()
	for _, r := range []admin.Role{admin.RoleViewer, admin.RoleOperator, admin.RoleAdmin} {
		secured.Auth.Tokens = append(secured.Auth.Tokens, admin.TokenConfig{Name: "ci-" + string(r), Role: r, Token: roleTokens[r]})
	}
	for _, c := range []struct {
		name   string
		cfg    admin.Config
		method string
		token  string
	}{
		{"off/get", local(), http.MethodGet, ""},
		{"token/get", secured, http.MethodGet, roleTokens[admin.RoleViewer]},
		{"token/post-audited", secured, http.MethodPost, roleTokens[admin.RoleOperator]},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := admin.NewServer(c.cfg, nil, admin.StatusInfo{}, nil, nil, routes)
			if err != nil {
				b.Fatal(err)
			}
			h := s.Handler()
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(c.method, "/admin/v1/x", nil)
				if c.token != "" {
					req.Header.Set("Authorization", "Bearer "+c.token)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusNoContent {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}

// BenchmarkCheckPassword is what one sign-in costs the server (bcrypt at
// auth.PasswordCost).
func BenchmarkCheckPassword(b *testing.B) {
	h, err := auth.HashPassword("correct horse battery")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !auth.CheckPassword(h, "correct horse battery") {
			b.Fatal("no match")
		}
	}
}
