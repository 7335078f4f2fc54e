package admin_test

import (
	"encoding/json"
	"fmt"
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

// auditPage fetches GET /admin/v1/audit with query q as a viewer.
func auditPage(t *testing.T, base, q string) admin.AuditPage {
	t.Helper()
	code, body, _ := request(t, http.MethodGet, base+admin.AuditPath+q, "",
		map[string]string{"Authorization": "Bearer " + roleTokens[admin.RoleViewer]})
	require.Equal(t, http.StatusOK, code, body)
	var p admin.AuditPage
	require.NoError(t, json.Unmarshal([]byte(body), &p))
	return p
}

// TestAuditRing: sign-ins (and failed ones), sign-outs, log-level changes,
// actions and refusals of known identities are in the ring, newest first,
// with identity, role and remote address; calls without valid
// credentials are not; paging with limit and cursor walks all of it
// once.
func TestAuditRing(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, secured(t), nil)
	base := srv.URL
	op := map[string]string{"Authorization": "Bearer " + roleTokens[admin.RoleOperator]}
	viewer := map[string]string{"Authorization": "Bearer " + roleTokens[admin.RoleViewer]}

	code, _, _ := request(t, http.MethodPost, base+admin.SessionPath, `{"name":"alice","password":"wrong-wrong"}`, nil)
	require.Equal(t, http.StatusUnauthorized, code)
	cookie, csrf := signIn(t, base, "alice", "alicealice")
	code, _, _ = request(t, http.MethodPut, base+admin.LogLevelPath, `{"level":"debug"}`, op)
	require.Equal(t, http.StatusOK, code)
	code, _, _ = request(t, http.MethodPost, base+"/admin/v1/pools/orders/pause", "", viewer)
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = request(t, http.MethodPost, base+"/admin/v1/pools/orders/pause", "", nil)
	require.Equal(t, http.StatusUnauthorized, code)
	code, _, _ = request(t, http.MethodPost, base+"/admin/v1/pools/orders/pause", "",
		map[string]string{"Cookie": cookie.String(), admin.CSRFHeader: csrf})
	require.Equal(t, http.StatusOK, code)
	code, _, _ = request(t, http.MethodDelete, base+admin.SessionPath, "",
		map[string]string{"Cookie": cookie.String(), admin.CSRFHeader: csrf})
	require.Equal(t, http.StatusNoContent, code)

	p := auditPage(t, base, "")
	require.Empty(t, p.NextCursor)
	type row struct{ Action, Identity, Result, Target string }
	var got []row
	for _, e := range p.Entries {
		got = append(got, row{e.Action, e.Identity, e.Result, e.Target})
		require.NotZero(t, e.ID)
		require.NotEmpty(t, e.Remote)
		require.False(t, e.Time.IsZero())
	}
	require.Equal(t, []row{
		{"session.delete", "alice", admin.AuditOK, "user/alice"},
		{"pool.pause", "alice", admin.AuditOK, "pool/orders"},
		{"POST /admin/v1/pools/{pool}/pause", "ci-viewer", admin.AuditDenied, "/admin/v1/pools/orders/pause"},
		{"loglevel.set", "ci-operator", admin.AuditOK, "log"},
		{"session.create", "alice", admin.AuditOK, "user/alice"},
		{"session.create", "alice", admin.AuditDenied, "user/alice"},
	}, got)
	require.Equal(t, admin.RoleOperator, p.Entries[1].Role)
	require.Equal(t, "session", p.Entries[1].Auth)
	require.Equal(t, map[string]any{"from": "info", "to": "debug"}, p.Entries[3].Params)
	require.Equal(t, http.StatusForbidden, p.Entries[2].Status)

	// Paging: two at a time, each entry once, in order.
	var ids []int64
	cursor := ""
	for range 10 {
		pg := auditPage(t, base, "?limit=2"+cursor)
		for _, e := range pg.Entries {
			ids = append(ids, e.ID)
		}
		if pg.NextCursor == "" {
			break
		}
		cursor = "&cursor=" + pg.NextCursor
	}
	require.Len(t, ids, len(p.Entries))
	for i, e := range p.Entries {
		require.Equal(t, e.ID, ids[i])
	}
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x", "?cursor=-1", "?cursor=abc"} {
		code, _, _ := request(t, http.MethodGet, base+admin.AuditPath+q, "", viewer)
		require.Equal(t, http.StatusBadRequest, code, q)
	}
}

// TestAuditRingIsBounded: the ring keeps the newest ring_size entries
// and says how many it dropped: its last page is not the end of the
// audit.
func TestAuditRingIsBounded(t *testing.T) {
	t.Parallel()
	cfg := secured(t)
	cfg.Audit.RingSize = 3
	_, srv := serve(t, cfg, nil)
	op := map[string]string{"Authorization": "Bearer " + roleTokens[admin.RoleOperator]}
	for i := range 5 {
		code, _, _ := request(t, http.MethodPost, srv.URL+fmt.Sprintf("/admin/v1/pools/p%d/pause", i), "", op)
		require.Equal(t, http.StatusOK, code)
	}
	p := auditPage(t, srv.URL, "")
	require.Len(t, p.Entries, 3)
	for i, want := range []string{"pool/p4", "pool/p3", "pool/p2"} {
		require.Equal(t, want, p.Entries[i].Target)
	}
	require.Empty(t, p.NextCursor)
	require.EqualValues(t, 2, p.Evicted, "p0 and p1 were dropped")
}

// TestFailedSignInIsAudited: a failed sign-in is in the audit (ring and
// log) with the name tried, cleaned (no control or format characters,
// at most 64 characters), the client's address and the reason (unknown
// user, wrong password, the failure that rate-limits the address); the
// first sign-in refused for the rate limit is audited with its name, the
// next ones of that address are not (anyone could flood the audit). No
// password is in the audit or the log.
func TestFailedSignInIsAudited(t *testing.T) {
	t.Parallel()
	cfg := secured(t)
	cfg.Auth.FailedAttempts = 3
	cfg.Auth.FailedWindow = 1 << 40 // no refill during the test
	core, logs := observer.New(zapcore.InfoLevel)
	s, err := admin.NewServer(cfg, zap.New(core), admin.StatusInfo{}, nil, nil, nil)
	require.NoError(t, err)
	h := s.Handler()
	const remote = "192.0.2.7:1000"
	try := func(name, pw string) int {
		t.Helper()
		b, err := json.Marshal(admin.SignIn{Name: name, Password: pw})
		require.NoError(t, err)
		req := httptest.NewRequest(http.MethodPost, admin.SessionPath, strings.NewReader(string(b)))
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	forged := "mal\x1b[2Jlory\r\n\u202eok\u2028" + strings.Repeat("é", 100)
	require.Equal(t, http.StatusUnauthorized, try("alice", "guess-one-pw"))
	require.Equal(t, http.StatusUnauthorized, try(forged, "guess-two-pw"))
	require.Equal(t, http.StatusUnauthorized, try("victor", "guess-three-pw"))
	require.Equal(t, http.StatusTooManyRequests, try("bob", "guess-four-pw"))
	require.Equal(t, http.StatusTooManyRequests, try("carol", "guess-five-pw"))

	req := httptest.NewRequest(http.MethodGet, admin.AuditPath, nil)
	req.RemoteAddr = "192.0.2.99:1"
	req.Header.Set("Authorization", "Bearer "+roleTokens[admin.RoleViewer])
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var p admin.AuditPage
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
	cleaned := "mal[2Jloryok" + strings.Repeat("é", 64-len("mal[2Jloryok")) + "…"
	type row struct {
		Identity, Target, Result, Error, Remote string
		Status                                  int
	}
	var got []row
	for _, e := range p.Entries {
		require.Equal(t, "session.create", e.Action)
		got = append(got, row{e.Identity, e.Target, e.Result, e.Error, e.Remote, e.Status})
	}
	require.Equal(t, []row{ // newest first
		{"bob", "user/bob", admin.AuditDenied, "rate-limited: too many failed sign-ins or tokens from this address", remote, http.StatusTooManyRequests},
		{"victor", "user/victor", admin.AuditDenied, "wrong password; the address is now rate-limited", remote, http.StatusUnauthorized},
		{cleaned, "user/" + cleaned, admin.AuditDenied, "unknown user", remote, http.StatusUnauthorized},
		{"alice", "user/alice", admin.AuditDenied, "wrong password", remote, http.StatusUnauthorized},
	}, got)

	var logged strings.Builder
	for _, l := range logs.All() {
		logged.WriteString(l.Message)
		for k, v := range l.ContextMap() {
			fmt.Fprintf(&logged, " %s=%v", k, v)
		}
		logged.WriteString("\n")
	}
	for _, pw := range []string{"guess-one-pw", "guess-two-pw", "guess-three-pw", "guess-four-pw", "guess-five-pw"} {
		require.NotContains(t, rec.Body.String(), pw)
		require.NotContains(t, logged.String(), pw)
	}
	require.NotContains(t, logged.String(), "\x1b", "the log holds the cleaned name too")
	require.Contains(t, logged.String(), "name="+cleaned)
}

// TestAuditIsLoggedAtEveryLogLevel: the log's audit lines (at info) are
// written whatever the log level: a host run at log.level warn or
// error, or one whose level an operator raised, wrote none, and the
// only record of a call was the ring of a process (the "entry not
// stored" error said it was in the log). Other lines keep the level.
func TestAuditIsLoggedAtEveryLogLevel(t *testing.T) {
	t.Parallel()
	level := zap.NewAtomicLevelAt(zapcore.ErrorLevel)
	core, logs := observer.New(level)
	routes := append([]admin.Route{{Pattern: "POST /admin/v1/things/{id}/poke", Role: admin.RoleOperator,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			admin.Audit(r, admin.AuditEntry{Action: "thing.poke", Target: "thing/" + r.PathValue("id")})
			w.WriteHeader(http.StatusNoContent)
		})}}, admin.LogLevelRoutes(level, zap.New(core))...)
	s, err := admin.NewServer(local(), zap.New(core), admin.StatusInfo{}, nil, nil, routes)
	require.NoError(t, err)
	h := s.Handler()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/admin/v1/things/7/poke", nil))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, admin.LogLevelPath, strings.NewReader(`{"level":"warn"}`)))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	audits := logs.FilterMessage("audit").All()
	require.Len(t, audits, 2, "every call is in the log at level error and warn")
	require.Equal(t, "thing.poke", audits[0].ContextMap()["action"])
	require.Equal(t, zapcore.InfoLevel, audits[0].Level)
	require.Equal(t, "loglevel.set", audits[1].ContextMap()["action"])
}
