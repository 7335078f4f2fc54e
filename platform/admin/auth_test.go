package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/admintest"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
)

// The tokens of secured(), one per role.
var roleTokens = map[admin.Role]string{
	admin.RoleViewer:   "viewer-token-0123456789",
	admin.RoleOperator: "operator-token-0123456789",
	admin.RoleAdmin:    "admin-token-0123456789",
}

// hash is a bcrypt hash of pw at the lowest cost (tests only).
func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	require.NoError(t, err)
	return string(h)
}

// secured is a loopback config with a token per role and two users,
// alice (operator) and victor (viewer), whose password is their name
// twice.
func secured(t *testing.T) admin.Config {
	c := local()
	for _, r := range []admin.Role{admin.RoleViewer, admin.RoleOperator, admin.RoleAdmin} {
		c.Auth.Tokens = append(c.Auth.Tokens, admin.TokenConfig{Name: "ci-" + string(r), Role: r, Token: roleTokens[r]})
	}
	c.Auth.Users = []admin.UserConfig{
		{Name: "alice", Role: admin.RoleOperator, PasswordHash: hash(t, "alicealice")},
		{Name: "victor", Role: admin.RoleViewer, PasswordHash: hash(t, "victorvictor")},
	}
	return c
}

// customer is what the mailorder-like page shows: a customer's address.
const customer = "Erika Mustermann, Heidestrasse 17, 51147 Köln"

// sampleRoutes are routes like the ones the platform and apps contribute:
// a read (the mailorder page, with a customer's address in it), an action,
// an admin-only read, a public webhook, a route without method.
func sampleRoutes() []admin.Route {
	ok := func(w http.ResponseWriter, r *http.Request) {
		admin.WriteJSON(w, http.StatusOK, map[string]string{"path": r.URL.Path})
	}
	return append([]admin.Route{
		{Pattern: "GET /admin/v1/mailorder", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			admin.WriteJSON(w, http.StatusOK, map[string]any{"orders": []map[string]string{{"ship_to": customer}}})
		})},
		{Pattern: "POST /admin/v1/pools/{pool}/pause", Role: admin.RoleOperator, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			admin.Audit(r, admin.AuditEntry{Action: "pool.pause", Target: "pool/" + r.PathValue("pool")})
			ok(w, r)
		})},
		{Pattern: "GET /admin/v1/config", Role: admin.RoleAdmin, Handler: http.HandlerFunc(ok)},
		{Pattern: "POST /hooks/v1/shipments", Role: admin.RolePublic, Handler: http.HandlerFunc(ok)},
		{Pattern: "/admin/v1/anything/{rest...}", Role: admin.RoleOperator, Handler: http.HandlerFunc(ok)},
		{Pattern: "GET /metrics", Handler: http.HandlerFunc(ok)},
	}, admin.LogLevelRoutes(zap.NewAtomicLevel(), nil)...)
}

// serve starts a server for cfg with the sample routes and health.
func serve(t *testing.T, cfg admin.Config, log *zap.Logger) (*admin.Server, *httptest.Server) {
	t.Helper()
	comps := lifecycle.NewRegistry(nil, nil)
	hr, err := health.NewRegistry(health.Options{}, comps, nil)
	require.NoError(t, err)
	s, err := admin.NewServer(cfg, log, admin.StatusInfo{}, comps, hr, sampleRoutes())
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv
}

// TestEveryRouteEnforcesItsRole walks every route the server serves
// (built in and contributed) without credentials and with each role.
func TestEveryRouteEnforcesItsRole(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, secured(t), nil)
	routes := s.Routes()
	roles := map[string]admin.Role{}
	for _, r := range routes {
		roles[r.Pattern] = r.Role
	}
	// The built-in routes and their roles.
	require.Equal(t, map[string]admin.Role{
		"GET /livez": admin.RolePublic, "GET /readyz": admin.RolePublic, "GET /healthz": admin.RoleViewer,
		"GET /admin/v1/status": admin.RoleViewer, "GET /admin/v1/audit": admin.RoleViewer,
		"GET /admin/v1/loglevel": admin.RoleViewer, "PUT /admin/v1/loglevel": admin.RoleOperator,
		"POST /admin/v1/session": admin.RolePublic, "GET /admin/v1/session": admin.RoleViewer, "DELETE /admin/v1/session": admin.RolePublic,
		"GET /admin/v1/mailorder": admin.RoleViewer, "GET /metrics": admin.RoleViewer, "GET /admin/v1/config": admin.RoleAdmin,
		"POST /admin/v1/pools/{pool}/pause": admin.RoleOperator, "POST /hooks/v1/shipments": admin.RolePublic,
		"/admin/v1/anything/{rest...}": admin.RoleOperator,
	}, roles)
	admintest.CheckRoles(t, srv.URL, routes, roleTokens)
}

// TestMailorderPageNeedsARole: the mailorder page (a route with no Role:
// viewer) answers 401 without credentials and shows no customer's
// address; a viewer sees it.
func TestMailorderPageNeedsARole(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, secured(t), nil)
	code, body, hdr := request(t, http.MethodGet, srv.URL+"/admin/v1/mailorder", "", nil)
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, `Bearer realm="plba admin"`, hdr.Get("WWW-Authenticate"))
	require.NotContains(t, body, "Heidestrasse")
	code, body, _ = request(t, http.MethodGet, srv.URL+"/admin/v1/mailorder", "",
		map[string]string{"Authorization": "Bearer wrong-token-000000000"})
	require.Equal(t, http.StatusUnauthorized, code)
	require.NotContains(t, body, "Heidestrasse")

	code, body, _ = request(t, http.MethodGet, srv.URL+"/admin/v1/mailorder", "",
		map[string]string{"Authorization": "Bearer " + roleTokens[admin.RoleViewer]})
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "Heidestrasse")
}

// request sends a request and returns code, body and headers.
func request(t *testing.T, method, url, body string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

// signIn signs in as name and returns the session cookie and CSRF token.
func signIn(t *testing.T, base, name, pw string) (*http.Cookie, string) {
	t.Helper()
	resp, err := http.Post(base+admin.SessionPath, "application/json",
		strings.NewReader(fmt.Sprintf(`{"name":%q,"password":%q}`, name, pw)))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var info admin.SessionInfo
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&info))
	require.NotEmpty(t, info.CSRFToken)
	for _, c := range resp.Cookies() {
		if c.Name == admin.SessionCookie {
			return c, info.CSRFToken
		}
	}
	t.Fatal("no session cookie")
	return nil, ""
}

// TestSessionSignInCSRFAndSignOut: a user signs in (JSON or form) to an
// HttpOnly, SameSite=Strict cookie; reads need only the cookie, a
// state-changing request also the CSRF token; the user's role holds;
// after sign-out the cookie is worthless.
func TestSessionSignInCSRFAndSignOut(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, secured(t), nil)
	base := srv.URL
	resp, err := http.Post(base+admin.SessionPath, "application/json", strings.NewReader(`{"name":"alice","password":"alicealice"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	c := resp.Cookies()[0]
	require.Equal(t, admin.SessionCookie, c.Name)
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, c.SameSite)
	require.False(t, c.Secure, "no TLS: the cookie must work over http")
	require.Greater(t, c.MaxAge, 0)

	cookie, csrf := signIn(t, base, "alice", "alicealice")
	withCookie := map[string]string{"Cookie": cookie.String()}
	code, body, _ := request(t, http.MethodGet, base+admin.SessionPath, "", withCookie)
	require.Equal(t, http.StatusOK, code)
	var info admin.SessionInfo
	require.NoError(t, json.Unmarshal([]byte(body), &info))
	require.Equal(t, admin.Identity{Name: "alice", Role: admin.RoleOperator, Kind: "session"}, info.Identity)
	require.Equal(t, csrf, info.CSRFToken)

	code, _, _ = request(t, http.MethodGet, base+"/admin/v1/status", "", withCookie)
	require.Equal(t, http.StatusOK, code)
	code, body, _ = request(t, http.MethodPost, base+"/admin/v1/pools/default/pause", "", withCookie)
	require.Equal(t, http.StatusForbidden, code, body)
	require.Contains(t, body, admin.CSRFHeader)
	code, _, _ = request(t, http.MethodPost, base+"/admin/v1/pools/default/pause", "",
		map[string]string{"Cookie": cookie.String(), admin.CSRFHeader: "not-the-token"})
	require.Equal(t, http.StatusForbidden, code)
	withCSRF := map[string]string{"Cookie": cookie.String(), admin.CSRFHeader: csrf}
	code, _, _ = request(t, http.MethodPost, base+"/admin/v1/pools/default/pause", "", withCSRF)
	require.Equal(t, http.StatusOK, code)
	code, _, _ = request(t, http.MethodGet, base+"/admin/v1/config", "", withCookie)
	require.Equal(t, http.StatusForbidden, code, "an operator is not an admin")

	// A viewer signed in through a form may read, not act.
	resp, err = http.PostForm(base+admin.SessionPath, url.Values{"name": {"victor"}, "password": {"victorvictor"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	vc := resp.Cookies()[0]
	code, _, _ = request(t, http.MethodGet, base+"/admin/v1/mailorder", "", map[string]string{"Cookie": vc.String()})
	require.Equal(t, http.StatusOK, code)

	// Wrong password, unknown user, empty body.
	for _, b := range []string{`{"name":"alice","password":"wrong-password"}`, `{"name":"mallory","password":"alicealice"}`} {
		code, body, hdr := request(t, http.MethodPost, base+admin.SessionPath, b, map[string]string{"Content-Type": "application/json"})
		require.Equal(t, http.StatusUnauthorized, code)
		require.Contains(t, body, "wrong name or password")
		require.NotEmpty(t, hdr.Get("WWW-Authenticate"))
	}
	code, _, _ = request(t, http.MethodPost, base+admin.SessionPath, `{"name":"alice"}`, nil)
	require.Equal(t, http.StatusBadRequest, code)
	// A sign-in posted from another site (login CSRF) is refused; from
	// the server's own origin it works.
	code, _, _ = request(t, http.MethodPost, base+admin.SessionPath, `{"name":"alice","password":"alicealice"}`,
		map[string]string{"Origin": "https://evil.example"})
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = request(t, http.MethodPost, base+admin.SessionPath, `{"name":"alice","password":"alicealice"}`,
		map[string]string{"Origin": base})
	require.Equal(t, http.StatusOK, code)

	// Sign-out needs the CSRF token, then the cookie is worthless.
	code, _, _ = request(t, http.MethodDelete, base+admin.SessionPath, "", withCookie)
	require.Equal(t, http.StatusForbidden, code)
	code, _, hdr := request(t, http.MethodDelete, base+admin.SessionPath, "", withCSRF)
	require.Equal(t, http.StatusNoContent, code)
	require.Contains(t, hdr.Get("Set-Cookie"), "Max-Age=0")
	code, _, _ = request(t, http.MethodGet, base+"/admin/v1/status", "", withCookie)
	require.Equal(t, http.StatusUnauthorized, code)
}

// TestFailedCredentialsAreRateLimited: past failed_attempts failures an
// address gets 429 with Retry-After, even with the right password, and
// it is logged; another address is not affected; bad bearer tokens count
// the same.
func TestFailedCredentialsAreRateLimited(t *testing.T) {
	t.Parallel()
	cfg := secured(t)
	cfg.Auth.FailedAttempts = 2
	cfg.Auth.FailedWindow = 1 << 40 // no refill during the test
	core, logs := observer.New(zapcore.InfoLevel)
	s, err := admin.NewServer(cfg, zap.New(core), admin.StatusInfo{}, nil, nil, nil)
	require.NoError(t, err)
	h := s.Handler()
	try := func(remote, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, admin.SessionPath, strings.NewReader(body))
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	const wrong, right = `{"name":"alice","password":"nope-nope"}`, `{"name":"alice","password":"alicealice"}`
	require.Equal(t, http.StatusUnauthorized, try("192.0.2.7:1000", wrong).Code)
	require.Equal(t, http.StatusUnauthorized, try("192.0.2.7:1001", wrong).Code)
	rec := try("192.0.2.7:1002", right)
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.NotEmpty(t, rec.Header().Get("Retry-After"))
	require.Equal(t, http.StatusOK, try("192.0.2.8:1000", right).Code, "another address")

	// Bearer tokens share the limit.
	bearer := func(remote, tok string) int {
		req := httptest.NewRequest(http.MethodGet, "/admin/v1/status", nil)
		req.RemoteAddr = remote
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	require.Equal(t, http.StatusUnauthorized, bearer("192.0.2.9:1", "wrong-token-000000000"))
	require.Equal(t, http.StatusUnauthorized, bearer("192.0.2.9:1", "wrong-token-000000000"))
	require.Equal(t, http.StatusTooManyRequests, bearer("192.0.2.9:1", roleTokens[admin.RoleViewer]))
	require.Equal(t, http.StatusOK, bearer("192.0.2.10:1", roleTokens[admin.RoleViewer]))

	refused := logs.FilterMessageSnippet("admin: refused").All()
	require.Len(t, refused, 4)
	require.Equal(t, "alice", refused[0].ContextMap()["name"])
	require.Equal(t, true, refused[1].ContextMap()["limited"])
}

// TestAuthOff: mode none, or loopback without credentials, lets every
// request through as the anonymous admin, and says so at warn on start.
func TestAuthOff(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		cfg  func() admin.Config
		warn string
	}{
		{"mode none", func() admin.Config {
			c := secured(t)
			c.Auth.Mode = admin.AuthNone
			return c
		}, "authentication is OFF (admin.auth.mode: none)"},
		{"loopback without credentials", local, "no credentials configured and the server listens on loopback only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			s, srv := serve(t, c.cfg(), zap.New(core))
			for _, r := range s.Routes() {
				method, path := admintest.Request(r.Pattern)
				code, _, _ := request(t, method, srv.URL+path, "", nil)
				require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, code, r.Pattern)
			}
			require.NoError(t, s.Start(context.Background()))
			t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })
			require.Len(t, logs.FilterMessageSnippet(c.warn).FilterLevelExact(zapcore.WarnLevel).All(), 1)
			code, body, _ := request(t, http.MethodGet, srv.URL+"/admin/v1/config", "", nil)
			require.Equal(t, http.StatusOK, code, body)
			code, body, _ = request(t, http.MethodGet, srv.URL+admin.SessionPath, "", nil)
			require.Equal(t, http.StatusOK, code)
			require.JSONEq(t, `{"name":"anonymous","role":"admin","kind":"none"}`, body)
		})
	}
}

// TestSecureCookiesBehindATLSProxy: behind a proxy that terminates TLS
// the server serves plain HTTP, and its session cookie, not Secure, would
// also be sent over plain HTTP to the same host. auth.secure_cookies
// marks it Secure, and its removal at sign-out too. There was no way to.
func TestSecureCookiesBehindATLSProxy(t *testing.T) {
	t.Parallel()
	c := secured(t)
	c.Auth.SecureCookies = true
	_, srv := serve(t, c, nil)
	resp, err := http.Post(srv.URL+admin.SessionPath, "application/json", strings.NewReader(`{"name":"alice","password":"alicealice"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, resp.Cookies()[0].Secure, "the session cookie is Secure")
	cookie, csrf := signIn(t, srv.URL, "alice", "alicealice")
	_, _, h := request(t, http.MethodDelete, srv.URL+admin.SessionPath, "", map[string]string{"Cookie": cookie.String(), "X-CSRF-Token": csrf})
	require.Contains(t, h.Get("Set-Cookie"), "Secure", "its removal too")
}
