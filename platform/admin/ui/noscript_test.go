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

// TestDeadLetterFormsWorkWithoutScripts: without scripts, the dead
// letters' form asks for the confirmation on a page of its own, whose Yes
// (with the CSRF token in its field) re-drives and answers with the
// result on a page.
func TestDeadLetterFormsWorkWithoutScripts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.fail.Store(true)
	ids := e.enqueue(2)
	eventually(t, "two dead letters", func() bool { return e.dead() == 2 })
	e.fail.Store(false)
	c := e.client()
	c.signIn(operatorName)
	q := "/ui/queues/" + testQueue
	v := formTo(t, c.get(q).body, q+"/dead/confirm")
	v["ids"], v["action"] = ids, []string{"redrive:ids"}
	r := c.do(http.MethodPost, q+"/dead/confirm", v, false)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, "<html", "a whole page")
	require.Contains(t, r.body, "Re-drive 2 dead letters")
	checkPage(t, "the confirmation's page", r)
	require.Equal(t, int64(2), e.dead(), "asked only")

	yes := formTo(t, r.body, q+"/dead/redrive")
	r = c.do(http.MethodPost, q+"/dead/redrive", yes, false)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, "<html", "a whole page")
	require.Contains(t, r.body, "Re-drove 2 of 2 dead letters.")
	require.Contains(t, r.body, `href="`+q+`"`, "the way back to the list")
	require.Zero(t, e.dead())
	// The re-driven copies run before the handler fails again: with one
	// attempt, a copy still queued then would be a dead letter once more.
	eventually(t, "the re-driven tasks ran and succeeded", func() bool {
		p, _ := e.rt.Pool(testQueue)
		return p.Stats().Succeeded == 2
	})

	// The dead letter's own page asks the same way.
	e.fail.Store(true)
	one := e.enqueue(1)
	eventually(t, "a dead letter", func() bool { return e.dead() == 1 })
	v = formTo(t, c.get(q+"/dead/"+one[0]).body, q+"/dead/confirm")
	v["op"] = []string{"purge"}
	r = c.do(http.MethodPost, q+"/dead/confirm", v, false)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, "Purge 1 dead letter")
}
