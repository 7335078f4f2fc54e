package ui_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/admintest"
)

// TestCrossSiteFormsRefusedWithAuthenticationOff: with authentication
// off a page of another site that posts a form to the UI (or to the API
// it calls) in the browser of someone running the host on loopback is
// refused, whether the browser says so in Sec-Fetch-Site or in Origin;
// the same form from the UI itself acts.
func TestCrossSiteFormsRefusedWithAuthenticationOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	p, _ := e.rt.Pool(testQueue)
	post := func(path string, hdr map[string]string) int {
		req, err := http.NewRequest(http.MethodPost, e.base+path, strings.NewReader("scope=filter"))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = res.Body.Close()
		return res.StatusCode
	}
	for _, path := range []string{"/ui/pools/" + testQueue + "/pause", "/admin/v1/pools/" + testQueue + "/pause"} {
		for _, hdr := range []map[string]string{
			{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
			{"Origin": "https://evil.example"},
			{"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:1"},
		} {
			require.Equal(t, http.StatusForbidden, post(path, hdr), "%s %v", path, hdr)
			require.False(t, p.Paused(), "%s %v: a cross-site form paused the pool", path, hdr)
		}
	}
	require.Equal(t, http.StatusOK, post("/ui/pools/"+testQueue+"/pause", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": e.base}))
	require.True(t, p.Paused(), "the UI's own form acts")
}

// TestFormsWithTheCSRFTokenPost: a form that carries the session's CSRF
// token posts, so that a browser without htmx (scripts off, or not yet
// loaded) that submits it does not put the token in a URL (the history,
// the address bar, a proxy's log) with a GET.
func TestFormsWithTheCSRFTokenPost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.fail.Store(true)
	ids := e.enqueue(1)
	eventually(t, "a dead letter", func() bool { return e.dead() == 1 })
	c := e.client()
	c.signIn(operatorName)
	n := 0
	for _, p := range []string{"/ui/", "/ui/queues/" + testQueue, "/ui/queues/" + testQueue + "/dead/" + ids[0], "/ui/pools", "/ui/audit"} {
		r := c.get(p)
		checkPage(t, p, r)
		for _, m := range formRE.FindAllStringSubmatch(r.body, -1) {
			if strings.Contains(m[2], `name="csrf"`) {
				n++
				require.Contains(t, m[1], `method="post"`, "%s: a form with the CSRF token: <form%s>", p, m[1])
			}
		}
	}
	require.GreaterOrEqual(t, n, 5, "the forms with the token were found")
}

// TestEveryUIActionNeedsTheCSRFToken walks every state-changing route of
// the UI with an operator's session cookie and no CSRF token, as a form
// of a browser that names no origin (no Sec-Fetch-Site, no Origin) would
// come: each is refused with 403 by the server before the UI's handler
// runs, nothing is done, and the audit records each refusal once, on the
// UI's route, with the reason.
func TestEveryUIActionNeedsTheCSRFToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	c := e.client()
	c.signIn(operatorName)
	n := 0
	for _, r := range e.srv.Routes() {
		method, path := admintest.Request(r.Pattern)
		if method == http.MethodGet || !strings.HasPrefix(path, "/ui/") || r.Role == admin.RolePublic {
			continue
		}
		n++
		res := c.do(method, path, url.Values{"scope": {"all"}, "level": {"debug"}, "size": {"3"}, "confirm": {"yes"}}, false)
		require.Equal(t, http.StatusForbidden, res.code, "%s: %s", r.Pattern, res.body)
	}
	require.GreaterOrEqual(t, n, 5, "the UI's actions were found")
	p, _ := e.rt.Pool(testQueue)
	require.False(t, p.Paused())
	refused := 0
	for _, en := range auditEntries(t, e) {
		if en.Identity == operatorName && en.Result == admin.AuditDenied && en.Status == http.StatusForbidden {
			require.Equal(t, "no or wrong CSRF token", en.Error, "%+v", en)
			require.True(t, strings.HasPrefix(en.Target, "/ui/"), "the UI's route: %+v", en)
			refused++
		}
	}
	require.Equal(t, n, refused, "each refusal audited once")
}

var formRE = regexp.MustCompile(`(?s)<form([^>]*)>(.*?)</form>`)

// TestPlainFormPostWithTheCSRFField: a browser without htmx (scripts off,
// or not loaded yet) posts an action form as it is: form encoding, the
// session cookie and the token in the form's field, no header. The
// action is done, audited once, and answered with the page; the same
// post without the field is refused (403, as text, not JSON) and nothing
// is done.
func TestPlainFormPostWithTheCSRFField(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	c := e.client()
	c.signIn(operatorName)
	page := c.get("/ui/pools")
	require.Equal(t, http.StatusOK, page.code)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.body)
	require.NotNil(t, m, "the pools page's forms carry the token in a field")
	p, _ := e.rt.Pool(testQueue)
	path := "/ui/pools/" + testQueue + "/pause"

	res := c.do(http.MethodPost, path, url.Values{"other": {"x"}}, false)
	require.Equal(t, http.StatusForbidden, res.code, res.body)
	require.NotContains(t, res.hdr.Get("Content-Type"), "json", "a browser's form is answered with text: %s", res.body)
	require.False(t, p.Paused(), "paused without the token")
	res = c.do(http.MethodPost, path, url.Values{"csrf": {"wrong"}}, false)
	require.Equal(t, http.StatusForbidden, res.code, res.body)
	require.False(t, p.Paused(), "paused with a wrong token")

	res = c.do(http.MethodPost, path, url.Values{"csrf": {html.UnescapeString(m[1])}}, false)
	require.Equal(t, http.StatusOK, res.code, res.body)
	require.Contains(t, res.hdr.Get("Content-Type"), "text/html")
	require.Contains(t, res.body, "<html", "the whole page, not a fragment")
	require.True(t, p.Paused(), "the form's action was not done")
	done := 0
	for _, en := range auditEntries(t, e) {
		if en.Identity == operatorName && en.Result != admin.AuditDenied && strings.Contains(en.Target+en.Action, "pause") {
			require.Equal(t, "pool.pause", en.Action, "%+v", en)
			done++
		}
	}
	require.Equal(t, 1, done, "the action audited once")
	denied := 0
	for _, en := range auditEntries(t, e) {
		if en.Result == admin.AuditDenied {
			denied++
		}
	}
	require.Equal(t, 2, denied, "each refused post audited once")
}
