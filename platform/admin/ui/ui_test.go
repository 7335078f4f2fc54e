package ui_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/admintest"
	"github.com/plba/plba/platform/admin/ui"
	"github.com/plba/plba/platform/queue"
)

// pages are every page of the UI.
var pages = []string{"/ui/", "/ui/queues", "/ui/queues/" + testQueue, "/ui/pools", "/ui/sources", "/ui/audit", "/ui/apps/things"}

var (
	scriptTag   = regexp.MustCompile(`<script[^>]*>`)
	srcOrHref   = regexp.MustCompile(`(?:src|href|action|hx-get|hx-post)="([^"]*)"`)
	inlineStyle = regexp.MustCompile(`\sstyle=`)
	inlineEvent = regexp.MustCompile(`\son[a-z]+=`)
)

// checkPage checks what every UI page must be: 200, the CSP and
// nosniff headers, scripts only from the server's own assets, no inline
// script, style or event handler, and every link to the server itself.
func checkPage(t *testing.T, path string, r response) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.code, "%s: %s", path, r.body)
	require.Equal(t, ui.CSP, r.hdr.Get("Content-Security-Policy"), path)
	require.Equal(t, "nosniff", r.hdr.Get("X-Content-Type-Options"), path)
	require.Equal(t, "DENY", r.hdr.Get("X-Frame-Options"), path)
	for _, s := range scriptTag.FindAllString(r.body, -1) {
		require.Regexp(t, `src="/ui/assets/[a-z.]+\.js"`, s, "%s: no inline script", path)
	}
	require.NotRegexp(t, inlineStyle, r.body, "%s: no inline style", path)
	require.NotRegexp(t, inlineEvent, r.body, "%s: no inline event handler", path)
	for _, m := range srcOrHref.FindAllStringSubmatch(r.body, -1) {
		u := strings.ReplaceAll(m[1], "&amp;", "&")
		require.True(t, strings.HasPrefix(u, "/ui/") || strings.HasPrefix(u, "?") || strings.HasPrefix(u, "#"),
			"%s: %q points elsewhere than the admin server's UI", path, u)
	}
}

// TestSignInPagesAndSignOut: without credentials every page sends the
// browser to the sign-in; a wrong password and a form without its token
// are refused; a signed-in user sees every page; signing out needs the
// CSRF token and ends the session on the server (its cookie, kept, is
// worth nothing). The API audits the sign-in and the
// sign-out, once each (the UI's own routes record nothing).
func TestSignInPagesAndSignOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	c := e.client()
	for _, p := range pages {
		r := c.get(p)
		require.Equal(t, http.StatusSeeOther, r.code, p)
		require.Equal(t, "/ui/signin", r.hdr.Get("Location"), p)
	}
	r := c.do(http.MethodGet, "/ui/queues", nil, true)
	require.Equal(t, "/ui/signin", r.hdr.Get("HX-Redirect"), "htmx is sent to the sign-in too")

	page := c.get("/ui/signin")
	checkPage(t, "/ui/signin", page)
	tok := hiddenToken.FindStringSubmatch(page.body)[1]
	r = c.do(http.MethodPost, "/ui/signin", url.Values{"token": {tok}, "name": {operatorName}, "password": {"wrong-password"}}, false)
	require.Equal(t, http.StatusUnauthorized, r.code)
	require.Contains(t, r.body, "Wrong name or password.")
	require.Contains(t, r.body, `value="olive"`, "the name stays in the form")
	r = c.do(http.MethodPost, "/ui/signin", url.Values{"token": {"forged"}, "name": {operatorName}, "password": {password}}, false)
	require.Equal(t, http.StatusBadRequest, r.code, "a sign-in without the form's token (another site's) is refused")
	require.Contains(t, r.body, "came from another site")

	c.signIn(operatorName)
	for _, p := range pages {
		checkPage(t, p, c.get(p))
	}
	// The audit page shows who tried, from where and why it failed.
	audit := c.get("/ui/audit").body
	require.Regexp(t, `<td>olive</td><td><code>session.create</code></td><td>user/olive</td><td class="params"></td><td><span class="result-denied">denied</span></td><td class="err">wrong password</td><td><code>127\.0\.0\.1:\d+</code></td>`, audit)
	r = c.get("/ui/signin")
	require.Equal(t, http.StatusSeeOther, r.code, "signed in: the sign-in page sends to the overview")

	r = c.do(http.MethodPost, "/ui/signout", url.Values{}, false)
	require.Equal(t, http.StatusForbidden, r.code, "signing out needs the CSRF token")
	require.Equal(t, http.StatusOK, c.get("/ui/").code, "still signed in")
	base, err := url.Parse(e.base)
	require.NoError(t, err)
	old := c.hc.Jar.Cookies(base) // the session cookie as it was before signing out
	require.NotEmpty(t, old)
	r = c.do(http.MethodPost, "/ui/signout", url.Values{"csrf": {c.csrf}}, false)
	require.Equal(t, http.StatusSeeOther, r.code, r.body)
	require.Equal(t, "/ui/signin", r.hdr.Get("Location"))
	require.Equal(t, http.StatusSeeOther, c.get("/ui/").code, "signed out")
	c.hc.Jar.SetCookies(base, old) // kept by whoever copied it: the server ended the session
	require.Equal(t, old, c.hc.Jar.Cookies(base))
	require.Equal(t, http.StatusSeeOther, c.get("/ui/").code, "the session ended on the server, not only in the browser")

	actions := auditActions(t, e)
	require.Contains(t, actions, "session.create olive denied")
	require.Contains(t, actions, "session.create olive ok")
	require.Contains(t, actions, "session.delete olive ok")
	for _, a := range actions {
		require.NotContains(t, a, "/ui/", "the UI's routes leave the audit to the API")
	}
}

// auditActions returns "action identity result" of every audit entry,
// newest first, read with the operator token.
func auditActions(t *testing.T, e *env) []string {
	t.Helper()
	var out []string
	for _, en := range auditEntries(t, e) {
		out = append(out, en.Action+" "+en.Identity+" "+en.Result)
	}
	return out
}

// auditEntries returns every audit entry, newest first, read with the
// operator token.
func auditEntries(t *testing.T, e *env) []admin.AuditEntry {
	t.Helper()
	c := e.client()
	c.token = operatorTok
	req, err := http.NewRequest(http.MethodGet, e.base+admin.AuditPath+"?limit=1000", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+operatorTok)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var page admin.AuditPage
	require.NoError(t, json.NewDecoder(res.Body).Decode(&page))
	return page.Entries
}

// TestRolesSeeAndDoWhatTheyMay: an operator (session or token) sees the
// action buttons, a viewer none; a viewer's forged actions get 403 from
// the server, with its session's valid CSRF token or with its token, and
// change nothing; an operator's action without the CSRF token gets 403
// too. Every route of the server (the UI's included) is closed to whom
// it should be.
func TestRolesSeeAndDoWhatTheyMay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.fail.Store(true)
	e.enqueue(1)
	eventually(t, "a dead letter", func() bool { return e.dead() == 1 })

	op, view := e.client(), e.client()
	op.signIn(operatorName)
	view.signIn(viewerName)
	opTok, viewTok := e.client(), e.client()
	opTok.token, viewTok.token = operatorTok, viewerTok
	for _, p := range []string{"/ui/pools", "/ui/sources", "/ui/queues/" + testQueue, "/ui/audit"} {
		for _, c := range []*client{op, opTok} {
			r := c.get(p)
			checkPage(t, p, r)
			require.Contains(t, r.body, "hx-post=", "%s: an operator sees actions", p)
		}
		for _, c := range []*client{view, viewTok} {
			r := c.get(p)
			checkPage(t, p, r)
			require.NotContains(t, r.body, "hx-post=", "%s: a viewer sees no action", p)
			require.NotContains(t, r.body, `class="act`, "%s: a viewer sees no action button", p)
		}
	}
	forged := []struct {
		path string
		form url.Values
	}{
		{"/ui/pools/" + testQueue + "/pause", url.Values{}},
		{"/ui/pools/" + testQueue + "/resize", url.Values{"size": {"7"}}},
		{"/ui/sources/" + testSource + "/pause", url.Values{}},
		{"/ui/queues/" + testQueue + "/dead/confirm", url.Values{"action": {"purge:filter"}}},
		{"/ui/queues/" + testQueue + "/dead/purge", url.Values{"scope": {"filter"}}},
		{"/ui/loglevel", url.Values{"level": {"debug"}}},
	}
	for _, f := range forged {
		for _, c := range []*client{view, viewTok} {
			r := c.do(http.MethodPost, f.path, f.form, true)
			require.Equal(t, http.StatusForbidden, r.code, "%s as viewer: %s", f.path, r.body)
		}
		op.csrf, op.token = "", ""
		r := op.do(http.MethodPost, f.path, f.form, true)
		require.Equal(t, http.StatusForbidden, r.code, "%s without the CSRF token: %s", f.path, r.body)
	}
	p, _ := e.rt.Pool(testQueue)
	require.False(t, p.Paused(), "no forged action got through")
	require.Equal(t, 2, p.Stats().Workers)
	require.Equal(t, int64(1), e.dead())

	admintest.CheckRoles(t, e.base, e.srv.Routes(), map[admin.Role]string{admin.RoleOperator: operatorTok, admin.RoleViewer: viewerTok})
}

// TestAuthenticationOff: with authentication off (loopback, no
// credentials) every page opens without signing in, with the actions,
// and the sign-in page sends to the overview.
func TestAuthenticationOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	c := e.client()
	for _, p := range pages {
		r := c.get(p)
		checkPage(t, p, r)
		require.Contains(t, r.body, "anonymous")
		require.NotContains(t, r.body, `id="signout"`, "nothing to sign out of")
	}
	require.Equal(t, http.StatusSeeOther, c.get("/ui/signin").code)
	r := c.do(http.MethodPost, "/ui/pools/"+testQueue+"/pause", url.Values{}, true)
	require.Equal(t, http.StatusOK, r.code, r.body)
	p, _ := e.rt.Pool(testQueue)
	require.True(t, p.Paused())
}

// TestOverview shows the version, the digest, the components with their
// errors and the health checks with their latency and errors, escaped.
func TestOverview(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	c := e.client()
	c.signIn(viewerName)
	eventually(t, "the checks ran", func() bool {
		return strings.Contains(c.get("/ui/").body, "mailbox &lt;inbox&gt; unreachable")
	})
	r := c.get("/ui/")
	checkPage(t, "/ui/", r)
	for _, want := range []string{"v9.8.7", "cafe1234", "pool/" + testQueue, "source/" + testSource, ">database<",
		// The chart is this host's (GET /admin/v1/throughput): with hosts
		// sharing a queue, it is not the queue's throughput.
		"Throughput of this host, last 15 minutes"} {
		require.Contains(t, r.body, want)
	}
	require.Regexp(t, `<td>database</td><td><span class="ok">yes</span></td><td>yes</td><td>[0-9.]+(µs|ms|ns|s)</td>`, r.body, "a check's latency")
}

// TestQueuesAreLive: the queues page and its htmx fragment show the
// backend's counts as they change.
func TestQueuesAreLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	c := e.client()
	c.signIn(viewerName)
	p, _ := e.rt.Pool(testQueue)
	pauseCtx := context.Background()
	_, err := e.rt.ControlPool(pauseCtx, testQueue, func(o *queue.PoolOverride) error { o.Paused = true; return nil })
	require.NoError(t, err)
	require.True(t, p.Paused())
	e.enqueue(3)
	r := c.do(http.MethodGet, "/ui/queues", nil, true)
	require.Equal(t, http.StatusOK, r.code)
	require.NotContains(t, r.body, "<html", "htmx gets the table alone")
	require.Regexp(t, `<td class="n depth">3</td>`, r.body)
	e.enqueue(2)
	r = c.do(http.MethodGet, "/ui/queues", nil, true)
	require.Regexp(t, `<td class="n depth">5</td>`, r.body)
	require.Contains(t, r.body, "state-paused")
	r = c.do(http.MethodGet, "/ui/queues/"+testQueue+"?part=counts", nil, true)
	require.Regexp(t, `<dd class="depth">5</dd>`, r.body)
	require.NotContains(t, r.body, "dead-table", "the counts alone")
	require.Equal(t, http.StatusNotFound, c.get("/ui/queues/no-such-queue").code)
}

// TestAuthenticationOffAnswersLoopbackNamesOnly: with authentication off
// on loopback the server answers only requests for a loopback name: a
// page of another site whose name the attacker points at 127.0.0.1 (DNS
// rebinding) is the same origin as itself to the browser, and would read
// the pages and act, with the Host header the only tell.
func TestAuthenticationOffAnswersLoopbackNamesOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	_, port, err := net.SplitHostPort(strings.TrimPrefix(e.base, "http://"))
	require.NoError(t, err)
	send := func(method, path, host string) int {
		req, err := http.NewRequest(method, e.base+path, strings.NewReader(""))
		require.NoError(t, err)
		req.Host = host
		if method == http.MethodPost {
			req.Header.Set("Origin", "http://"+host)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = res.Body.Close()
		return res.StatusCode
	}
	for _, host := range []string{"evil.example:" + port, "evil.example", "127.0.0.1.evil.example:" + port} {
		require.Equal(t, http.StatusForbidden, send(http.MethodGet, "/ui/", host), host)
		require.Equal(t, http.StatusForbidden, send(http.MethodGet, "/admin/v1/queues", host), host)
		require.Equal(t, http.StatusForbidden, send(http.MethodPost, "/ui/pools/"+testQueue+"/pause", host), host)
	}
	p, _ := e.rt.Pool(testQueue)
	require.False(t, p.Paused())
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port, "127.0.0.1"} {
		require.Equal(t, http.StatusOK, send(http.MethodGet, "/ui/", host), host)
	}
}

// TestActionBehindAProxyThatRewritesHost: behind a proxy that sends the
// server its own Host, a browser's Origin names the proxy's; the browser
// says same-origin in Sec-Fetch-Site, and the UI's action and the API
// call it makes in process both take its word.
func TestActionBehindAProxyThatRewritesHost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	req, err := http.NewRequest(http.MethodPost, e.base+"/ui/pools/"+testQueue+"/pause", strings.NewReader(""))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+operatorTok)
	req.Header.Set("Origin", "https://admin.example")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	p, _ := e.rt.Pool(testQueue)
	require.True(t, p.Paused())
}

// TestSignInBehindAProxyThatRewritesHost: behind a proxy that sends the
// server its own Host, the browser's Origin names the proxy's and its
// Sec-Fetch-Site says same-origin: the sign-in takes the browser's word
// as every other state-changing request does. Before, the session route
// compared Origin with Host on its own and refused it as a sign-in from
// another site: behind such a proxy nobody could sign in, though every
// action worked (TestActionBehindAProxyThatRewritesHost).
func TestSignInBehindAProxyThatRewritesHost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	c := e.client()
	page := c.get("/ui/signin")
	require.Equal(t, http.StatusOK, page.code, page.body)
	m := hiddenToken.FindStringSubmatch(page.body)
	require.NotNil(t, m, "the sign-in form has its token")
	form := url.Values{"token": {m[1]}, "name": {operatorName}, "password": {password}}
	req, err := http.NewRequest(http.MethodPost, e.base+"/ui/signin", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://admin.example")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err := c.hc.Do(req)
	require.NoError(t, err)
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusSeeOther, res.StatusCode, string(b))
	require.Equal(t, "/ui/", res.Header.Get("Location"))
	over := c.get("/ui/")
	require.Equal(t, http.StatusOK, over.code, "signed in: the overview, not the sign-in")

	// Posted from another site, the browser says so: refused.
	req, err = http.NewRequest(http.MethodPost, e.base+admin.SessionPath, strings.NewReader(`{"name":"`+operatorName+`","password":"`+password+`"}`))
	require.NoError(t, err)
	req.Header.Set("Origin", "https://admin.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusForbidden, res.StatusCode)
}

// TestAuditPageSaysTheRingDroppedEntries: the last page of an audit whose
// ring dropped older entries says so, with how many, instead of ending as
// if nothing came before.
func TestAuditPageSaysTheRingDroppedEntries(t *testing.T) {
	t.Parallel()
	api := http.NewServeMux()
	api.HandleFunc("GET "+admin.SessionPath, func(w http.ResponseWriter, _ *http.Request) {
		admin.WriteJSON(w, http.StatusOK, admin.SessionInfo{Identity: admin.Anonymous})
	})
	api.HandleFunc("GET "+admin.LogLevelPath, func(w http.ResponseWriter, _ *http.Request) {
		admin.WriteJSON(w, http.StatusOK, admin.LogLevel{Level: "info"})
	})
	api.HandleFunc("GET "+admin.AuditPath, func(w http.ResponseWriter, _ *http.Request) {
		admin.WriteJSON(w, http.StatusOK, admin.AuditPage{Entries: []admin.AuditEntry{{ID: 9, Time: time.Now(), Identity: "ops",
			Action: "pool.pause", Target: "pool/default", Result: admin.AuditOK}}, Evicted: 41})
	})
	u, err := ui.New(ui.Params{})
	require.NoError(t, err)
	u.Bind(api)
	mux := http.NewServeMux()
	for _, r := range u.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/audit", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), "pool/default")
	require.Regexp(t, `id="audit-evicted">End of the ring: 41 older entries were dropped`, rec.Body.String())
}
