package admin_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/platform/admin"
)

// TestAuditRecordsEveryStateChangingCall: a handler's entries are
// recorded when it returns, with the result from the status code when it
// left it empty and secrets redacted; a state-changing call whose handler
// recorded nothing is recorded under its route's pattern; a read is not
// recorded; outside the server Audit does nothing (and does not panic).
func TestAuditRecordsEveryStateChangingCall(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.InfoLevel)
	routes := []admin.Route{
		{Pattern: "POST /admin/v1/things/{id}/poke", Role: admin.RoleOperator, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			admin.Audit(r, admin.AuditEntry{Action: "thing.poke", Target: "thing/" + r.PathValue("id"),
				Params: map[string]any{"force": true, "api_token": "s3cret", "nested": map[string]any{"password": "pw", "n": 1}}})
			w.WriteHeader(http.StatusConflict)
		})},
		{Pattern: "DELETE /admin/v1/things/{id}", Role: admin.RoleOperator, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})},
		{Pattern: "GET /admin/v1/things", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			admin.WriteJSON(w, http.StatusOK, []string{})
		})},
	}
	s, err := admin.NewServer(local(), zap.New(core), admin.StatusInfo{}, nil, nil, routes)
	require.NoError(t, err)
	h := s.Handler()
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "/admin/v1/things/7/poke", nil),
		httptest.NewRequest(http.MethodDelete, "/admin/v1/things/8", nil),
		httptest.NewRequest(http.MethodGet, "/admin/v1/things", nil),
	} {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	audits := logs.FilterMessage("audit").All()
	require.Len(t, audits, 2)
	poke := audits[0].ContextMap()
	require.Equal(t, "thing.poke", poke["action"])
	require.Equal(t, "thing/7", poke["target"])
	require.Equal(t, admin.AuditFailed, poke["result"])
	require.EqualValues(t, http.StatusConflict, poke["status"])
	require.Equal(t, "192.0.2.1:1234", poke["remote"])
	params := poke["params"].(map[string]any)
	require.Equal(t, admin.Redacted, params["api_token"])
	require.Equal(t, true, params["force"])
	require.Equal(t, map[string]any{"password": admin.Redacted, "n": 1}, params["nested"])
	del := audits[1].ContextMap()
	require.Equal(t, "DELETE /admin/v1/things/{id}", del["action"])
	require.Equal(t, admin.AuditOK, del["result"])
	require.Equal(t, "audit", strings.TrimPrefix(audits[1].LoggerName, "admin."))

	// A handler called outside the server: nothing recorded, no panic.
	routes[0].Handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/admin/v1/things/9/poke", nil))
	require.Len(t, logs.FilterMessage("audit").All(), 2)
}
