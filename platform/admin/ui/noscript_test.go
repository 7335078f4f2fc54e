package ui_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// formTo finds the form of body that posts to action without scripts
// (its action attribute) and returns its hidden fields.
func formTo(t *testing.T, body, action string) url.Values {
	t.Helper()
	forms := regexp.MustCompile(`(?s)<form[^>]*>.*?</form>`).FindAllString(body, -1)
	for _, f := range forms {
		open := regexp.MustCompile(`<form[^>]*>`).FindString(f)
		if !regexp.MustCompile(`\saction="` + regexp.QuoteMeta(action) + `"`).MatchString(open) {
			continue
		}
		require.Regexp(t, `\smethod="post"`, open, action)
		v := url.Values{}
		for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(f, -1) {
			v.Add(m[1], html.UnescapeString(m[2]))
		}
		return v
	}
	t.Fatalf("no form posts to %s without scripts", action)
	return nil
}

// TestActionFormsWorkWithoutScripts: a browser without scripts (off, or
// htmx not loaded yet) posts the pages' action forms where they act,
// with the CSRF token in their field, and gets a whole page back: pause,
// resume and resize a pool, pause a source, set the log level.
func TestActionFormsWorkWithoutScripts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	c := e.client()
	c.signIn(operatorName)
	p, _ := e.rt.Pool(testQueue)
	post := func(page, action string, extra url.Values) response {
		t.Helper()
		v := formTo(t, c.get(page).body, action)
		for k, vs := range extra {
			v[k] = vs
		}
		r := c.do(http.MethodPost, action, v, false)
		if r.code == http.StatusSeeOther {
			r = c.get(r.hdr.Get("Location"))
		}
		require.Equal(t, http.StatusOK, r.code, "%s: %s", action, r.body)
		require.Contains(t, r.body, "<html", "%s: a whole page", action)
		return r
	}
	post("/ui/pools", "/ui/pools/"+testQueue+"/pause", nil)
	require.True(t, p.Paused())
	post("/ui/pools", "/ui/pools/"+testQueue+"/resume", nil)
	require.False(t, p.Paused())
	post("/ui/pools", "/ui/pools/"+testQueue+"/resize", url.Values{"size": {"4"}})
	require.Equal(t, 4, p.Stats().Workers)
	r := post("/ui/sources", "/ui/sources/"+testSource+"/pause", nil)
	require.Contains(t, r.body, "Resume source "+testSource)
	r = post("/ui/audit", "/ui/loglevel", url.Values{"level": {"debug"}})
	require.Contains(t, r.body, `<option value="debug" selected>`)
}
