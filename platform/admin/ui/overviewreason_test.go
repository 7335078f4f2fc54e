package ui_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/ui"
	"github.com/plba/plba/platform/health"
)

// TestOverviewSaysWhyNotReady: a host that is not ready (or not live)
// is shown so with the reason its status gives (the snapshot its live
// and ready come from), not a bare "no", and not the reason of a later
// /healthz, which may be ready by then.
func TestOverviewSaysWhyNotReady(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		live, ready bool
		reason, id  string
	}{
		{"not ready", true, false, "check database failed: connection refused", "ready-reason"},
		{"not live", false, false, "component pool/jobs failed: boom", "live-reason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := http.NewServeMux()
			api.HandleFunc("GET "+admin.SessionPath, func(w http.ResponseWriter, _ *http.Request) {
				admin.WriteJSON(w, http.StatusOK, admin.SessionInfo{Identity: admin.Anonymous})
			})
			api.HandleFunc("GET "+admin.StatusPath, func(w http.ResponseWriter, _ *http.Request) {
				admin.WriteJSON(w, http.StatusOK, admin.Status{Version: "v1", Started: time.Now(), Live: tc.live, Ready: tc.ready, Reason: tc.reason + " <&>"})
			})
			api.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
				admin.WriteJSON(w, http.StatusOK, health.Report{Live: true, Ready: true})
			})
			u, err := ui.New(ui.Params{})
			require.NoError(t, err)
			u.Bind(api)
			mux := http.NewServeMux()
			for _, r := range u.Routes() {
				mux.Handle(r.Pattern, r.Handler)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/", nil))
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			require.Contains(t, rec.Body.String(), `id="`+tc.id+`">`+tc.reason+` &lt;&amp;&gt;<`)
		})
	}
}
