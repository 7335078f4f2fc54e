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
