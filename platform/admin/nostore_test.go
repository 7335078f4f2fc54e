package admin_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
)

// Every answer that reflects live state (the probes, /healthz, the
// status and the admin API's JSON) tells caches not
// to keep it: a proxy or browser that showed a stored "ready" or queue
// count would show a state that no longer holds.
func TestLiveAnswersAreNotStored(t *testing.T) {
	t.Parallel()
	comps := lifecycle.NewRegistry(nil, nil)
	comps.MustRegister("queue/memory", lifecycle.StopHost).Set(lifecycle.Running, nil)
	hr, err := health.NewRegistry(health.Options{}, comps, nil)
	require.NoError(t, err)
	s, err := admin.NewServer(local(), nil, admin.StatusInfo{Version: "1"}, comps, hr, nil)
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, path := range []string{"/livez", "/readyz", "/healthz", "/admin/v1/status", admin.AuditPath} {
		res, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		_ = res.Body.Close()
		require.Equal(t, "no-store", res.Header.Get("Cache-Control"), "%s (%d)", path, res.StatusCode)
	}
}

// TestAuthenticatedAnswersAreNotStored: what a route that needs
// credentials answers (the metrics, a profile, an application's page
// written without WriteJSON) is not kept by a browser or a proxy: a
// page seen with a session would otherwise stay in the browser's cache
// after its user signed out, for the next user of the browser to bring
// back. A handler that says otherwise (its own Cache-Control) is obeyed,
// and a public route's answer (the web UI's assets) is left as its
// handler makes it.
func TestAuthenticatedAnswersAreNotStored(t *testing.T) {
	t.Parallel()
	text := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("plba_queue_depth 3\n"))
	}
	routes := []admin.Route{
		{Pattern: "GET /metrics", Handler: http.HandlerFunc(text)},
		{Pattern: "GET /admin/v1/debug/pprof/{$}", Role: admin.RoleAdmin, Handler: http.HandlerFunc(text)},
		{Pattern: "GET /admin/v1/cached", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "private, max-age=60")
			text(w, r)
		})},
		{Pattern: "GET /ui/assets/app.css", Role: admin.RolePublic, Handler: http.HandlerFunc(text)},
	}
	s, err := admin.NewServer(secured(t), nil, admin.StatusInfo{}, nil, nil, routes)
	require.NoError(t, err)
	for path, want := range map[string]string{
		"/metrics": "no-store", "/admin/v1/debug/pprof/": "no-store",
		"/admin/v1/cached": "private, max-age=60", "/ui/assets/app.css": "",
	} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+roleTokens[admin.RoleAdmin])
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, path)
		require.Equal(t, want, rec.Header().Get("Cache-Control"), path)
	}
}
