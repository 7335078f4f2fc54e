package ui_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
)

// TestDeadLettersRedriveAndPurgeWithConfirmation: the queue page lists
// the dead letters with their reasons, filters them, shows one with its
// headers and its payload indented; re-drive and purge first ask,
// stating the count from the API's dry run (which changes nothing), then
// act, and the API audits each action as the signed-in user.
func TestDeadLettersRedriveAndPurgeWithConfirmation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.fail.Store(true)
	ids := e.enqueue(3)
	eventually(t, "three dead letters", func() bool { return e.dead() == 3 })
	c := e.client()
	c.signIn(operatorName)

	qp := "/ui/queues/" + testQueue
	r := c.get(qp)
	checkPage(t, qp, r)
	require.Equal(t, 3, strings.Count(r.body, "upstream refused the order"))
	for _, id := range ids {
		require.Contains(t, r.body, `value="`+id+`"`)
	}
	r = c.get(qp + "?reason=nothing-like-it")
	require.Contains(t, r.body, "No dead letters match the filter.")
	r = c.get(qp + "?kind=" + testKind + "&reason=UPSTREAM")
	require.Equal(t, 3, strings.Count(r.body, "upstream refused the order"), "the reason filter ignores case")
	r = c.do(http.MethodGet, qp+"?part=dead&reason=upstream", nil, true)
	require.NotContains(t, r.body, "<html", "htmx gets the list alone")
	require.Contains(t, r.body, "dead-table")

	d := c.get(qp + "/dead/" + ids[0])
	checkPage(t, "dead letter", d)
	require.Contains(t, d.body, `<dd class="err" id="reason">upstream refused the order</dd>`)
	require.Contains(t, d.body, `<dd id="attempts">1</dd>`)
	require.Contains(t, d.body, "{\n  &#34;order&#34;: {\n    &#34;id&#34;: 42,", "the JSON payload indented")
	require.Equal(t, http.StatusNotFound, c.get(qp+"/dead/no-such-id").code)

	// Re-drive two selected: the confirmation states 2 and does nothing.
	sel := url.Values{"action": {"redrive:ids"}, "ids": {ids[0], ids[1]}}
	r = c.do(http.MethodPost, qp+"/dead/confirm", sel, true)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, "Re-drive 2 dead letters")
	require.Contains(t, r.body, "Yes, re-drive 2")
	require.Equal(t, int64(3), e.dead(), "asking changes nothing")
	r = c.do(http.MethodPost, qp+"/dead/confirm", url.Values{"action": {"redrive:ids"}}, true)
	require.Equal(t, http.StatusBadRequest, r.code, "nothing selected")
	require.Contains(t, r.body, "no dead letter selected")

	e.fail.Store(false)
	ran := e.ran.Load()
	r = c.do(http.MethodPost, qp+"/dead/redrive", url.Values{"scope": {"ids"}, "ids": {ids[0], ids[1]}}, true)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, "Re-drove 2 of 2 dead letters.")
	require.Equal(t, "dead-changed", r.hdr.Get("HX-Trigger"), "the list and the counts reload")
	eventually(t, "one dead letter left", func() bool { return e.dead() == 1 })
	eventually(t, "the re-driven tasks ran and succeeded", func() bool {
		p, _ := e.rt.Pool(testQueue)
		return e.ran.Load() >= ran+2 && p.Stats().Succeeded == 2
	})

	// Purge by filter: a filter that matches none says so; every one.
	r = c.do(http.MethodPost, qp+"/dead/confirm", url.Values{"action": {"purge:filter"}, "kind": {"other"}}, true)
	require.Contains(t, r.body, "Nothing to purge")
	r = c.do(http.MethodPost, qp+"/dead/confirm", url.Values{"action": {"purge:filter"}}, true)
	require.Contains(t, r.body, "Purge 1 dead letter</strong>")
	require.Contains(t, r.body, "(every one)")
	r = c.do(http.MethodPost, qp+"/dead/purge", url.Values{"scope": {"filter"}}, true)
	require.Contains(t, r.body, "Purged 1 of 1 dead letter.")
	require.Equal(t, int64(0), e.dead())

	actions := auditActions(t, e)
	require.Contains(t, actions, "dlq.redrive.dry_run olive ok")
	require.Contains(t, actions, "dlq.redrive olive ok")
	require.Contains(t, actions, "dlq.purge olive ok")
}

var workersCell = regexp.MustCompile(`(?s)data-pool="` + testQueue + `">.*?<td class="n">(\d+)`)

// TestPoolsSourcesAndLogLevel: an operator pauses, resumes and resizes a
// pool and pauses and resumes a source; each answer is the fresh table.
// A bad size is a 400 that changes nothing. The log level is set.
func TestPoolsSourcesAndLogLevel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	c := e.client()
	c.signIn(operatorName)
	pp := "/ui/pools/" + testQueue
	r := c.do(http.MethodPost, pp+"/pause", url.Values{}, true)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, "state-paused")
	require.Contains(t, r.body, "Resume pool "+testQueue)
	p, _ := e.rt.Pool(testQueue)
	require.True(t, p.Paused())
	r = c.do(http.MethodPost, pp+"/resume", url.Values{}, true)
	require.Contains(t, r.body, "Pause pool "+testQueue)
	require.False(t, p.Paused())
	r = c.do(http.MethodPost, pp+"/resize", url.Values{"size": {"5"}}, true)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Equal(t, "5", workersCell.FindStringSubmatch(r.body)[1])
	require.Contains(t, r.body, "(configured 2)")
	r = c.do(http.MethodPost, pp+"/resize", url.Values{"size": {"many"}}, true)
	require.Equal(t, http.StatusBadRequest, r.code)
	r = c.do(http.MethodPost, pp+"/resize", url.Values{"size": {"0"}}, true)
	require.Equal(t, http.StatusBadRequest, r.code, "the API's bounds")
	require.Equal(t, 5, p.Stats().Workers)
	r = c.do(http.MethodPost, pp+"/explode", url.Values{}, true)
	require.Equal(t, http.StatusNotFound, r.code)

	sp := "/ui/sources/" + testSource
	r = c.do(http.MethodPost, sp+"/pause", url.Values{}, true)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, "Resume source "+testSource)
	require.Contains(t, r.body, "state-paused")
	r = c.do(http.MethodPost, sp+"/resume", url.Values{}, true)
	require.Contains(t, r.body, "Pause source "+testSource)
	r = c.do(http.MethodPost, "/ui/sources/nope/pause", url.Values{}, true)
	require.Equal(t, http.StatusNotFound, r.code)

	r = c.do(http.MethodPost, "/ui/loglevel", url.Values{"level": {"debug"}}, true)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, "Set to debug.")
	require.Contains(t, c.get("/ui/audit").body, `<option value="debug" selected>`)
	r = c.do(http.MethodPost, "/ui/loglevel", url.Values{"level": {"loud"}}, true)
	require.Equal(t, http.StatusBadRequest, r.code)

	audit := c.get("/ui/audit")
	checkPage(t, "/ui/audit", audit)
	first := strings.Index(audit.body, "loglevel.set")
	require.Greater(t, first, 0)
	require.Less(t, first, strings.Index(audit.body, "pool.pause"), "newest first")
}

// TestApplicationPage: a contributed page is in the navigation and draws
// its sections escaped, with times as <time> and its paging link; an
// error of the page is a 500 page, a bad paging cursor a 400; an unknown
// page 404.
func TestApplicationPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	c := e.client()
	c.signIn(viewerName)
	r := c.get("/ui/")
	require.Contains(t, r.body, `<a href="/ui/apps/things">Things</a>`)
	r = c.get("/ui/apps/things")
	checkPage(t, "/ui/apps/things", r)
	require.Contains(t, r.body, "&lt;b&gt;first&lt;/b&gt;")
	require.Contains(t, r.body, `<time datetime="2026-01-02T03:04:05Z">`)
	require.Contains(t, r.body, `href="?page=2"`)
	r = c.get("/ui/apps/things?broken=1")
	require.Equal(t, http.StatusInternalServerError, r.code)
	require.Contains(t, r.body, "the store is down")
	require.Equal(t, http.StatusNotFound, c.get("/ui/apps/nothing").code)
	r = c.get("/ui/apps/things?cursor=made-up")
	require.Equal(t, http.StatusBadRequest, r.code, "a cursor the backend did not make is the caller's mistake")
	require.Contains(t, r.body, "bad cursor")
}

// TestAssetsAreEmbeddedAndSmall: every asset a page loads is served by
// the server itself, with the CSP, and all of them together are under
// 300 KB.
func TestAssetsAreEmbeddedAndSmall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	c := e.client()
	total := 0
	for _, a := range []string{"htmx.min.js", "app.js", "app.css", "icon.svg"} {
		r := c.get("/ui/assets/" + a)
		require.Equal(t, http.StatusOK, r.code, a)
		require.NotEmpty(t, r.hdr.Get("Content-Type"))
		require.Equal(t, "nosniff", r.hdr.Get("X-Content-Type-Options"))
		total += len(r.body)
	}
	require.Less(t, total, 300<<10, "all assets under 300 KB")
	t.Logf("assets: %d bytes", total)
	require.Equal(t, http.StatusNotFound, c.get("/ui/assets/htmx.VERSION").code, "only the assets pages load")
	require.Equal(t, http.StatusNotFound, c.get("/ui/assets/nothing.js").code)
}

var nextLink = regexp.MustCompile(`href="(/ui/queues/` + testQueue + `\?[^"]*cursor=[^"]+)" rel="next"`)

// TestDeadLettersArePaged: the list shows a page at a time with a link
// to the next that keeps the filter; the filter is kept in the list's
// reload too.
func TestDeadLettersArePaged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.fail.Store(true)
	e.enqueue(30)
	eventually(t, "thirty dead letters", func() bool { return e.dead() == 30 })
	c := e.client()
	c.signIn(viewerName)
	r := c.get("/ui/queues/" + testQueue + "?reason=upstream")
	require.Equal(t, 25, strings.Count(r.body, "upstream refused the order"))
	require.Contains(t, r.body, `hx-get="/ui/queues/`+testQueue+`?part=dead&amp;reason=upstream"`)
	m := nextLink.FindStringSubmatch(r.body)
	require.NotNil(t, m, "a link to the next page")
	next := strings.ReplaceAll(m[1], "&amp;", "&")
	require.Contains(t, next, "reason=upstream")
	r = c.get(next)
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, 5, strings.Count(r.body, "upstream refused the order"))
	require.Nil(t, nextLink.FindStringSubmatch(r.body), "the last page")
	require.Contains(t, r.body, "← Oldest")
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)

// formOf returns the hidden fields of the confirmation's form, as the
// browser posts them when Yes is clicked.
func formOf(t *testing.T, fragment string) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(fragment, -1) {
		v.Add(m[1], html.UnescapeString(m[2]))
	}
	require.NotEmpty(t, v, "the confirmation has a form: %s", fragment)
	return v
}

// TestConfirmedCountIsWhatIsDone: the confirmation of a purge of every
// dead letter matching a filter states a count; dead letters that come
// after it are not purged by its Yes, which purges what it stated.
func TestConfirmedCountIsWhatIsDone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.fail.Store(true)
	e.enqueue(2)
	eventually(t, "two dead letters", func() bool { return e.dead() == 2 })
	c := e.client()
	c.signIn(operatorName)
	qp := "/ui/queues/" + testQueue
	r := c.do(http.MethodPost, qp+"/dead/confirm", url.Values{"action": {"purge:filter"}, "reason": {"upstream"}}, true)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, "Yes, purge 2")
	yes := formOf(t, r.body)

	time.Sleep(5 * time.Millisecond)
	e.enqueue(3) // they fail too while the operator reads the confirmation
	eventually(t, "five dead letters", func() bool { return e.dead() == 5 })
	r = c.do(http.MethodPost, qp+"/dead/purge", yes, true)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, "Purged 2 of 2 dead letters.")
	require.Equal(t, int64(3), e.dead(), "the ones that came after the confirmation stay")
}

// TestStoppedRedriveShowsWhatIsKnown: a re-drive the API stops midway
// (the backend failed and what it did could not be checked) answers the
// result in place of the confirmation: the counts, how many are unknown,
// why it stopped; and the list and the counts reload, since dead letters
// may have left. Before, the answer was a bare error text: the stale
// confirmation stayed with its Yes, and the list kept showing as dead
// letters the ones the re-drive had moved.
func TestStoppedRedriveShowsWhatIsKnown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.fail.Store(true)
	ids := e.enqueue(3)
	eventually(t, "three dead letters", func() bool { return e.dead() == 3 })
	e.fail.Store(false)
	c := e.client()
	c.signIn(operatorName)
	qp := "/ui/queues/" + testQueue

	e.api.broken.Store(true)
	r := c.do(http.MethodPost, qp+"/dead/redrive", url.Values{"scope": {"ids"}, "ids": {ids[0], ids[1]}}, true)
	e.api.broken.Store(false)
	require.Equal(t, http.StatusInternalServerError, r.code, r.body)
	require.True(t, strings.HasPrefix(r.hdr.Get("Content-Type"), "text/html"), "the result, not an error text: %s", r.body)
	require.Equal(t, "dead-changed", r.hdr.Get("HX-Trigger"), "the list and the counts reload")
	require.Contains(t, r.body, `id="result-text"`)
	require.Contains(t, r.body, "Re-drove 0 of 2 dead letters, then stopped")
	require.Contains(t, r.body, "2 unknown")
	require.Contains(t, r.body, html.EscapeString(errConnectionLost.Error()))
	require.Equal(t, int64(1), e.dead(), "the backend did re-drive both")
	require.Contains(t, auditActions(t, e), "dlq.redrive olive failed")
}

// TestConfirmationLeavesOutWhatItSaysItLeavesOut: of two selected dead
// letters, one is purged by someone else before the confirmation; the
// confirmation says it is left out, and its Yes re-drives the other one
// alone: the result and the audit say it was done, with nothing failed.
// Before, the Yes posted the left-out id too, so the result listed it as
// failed and the audit recorded the confirmed re-drive as failed.
func TestConfirmationLeavesOutWhatItSaysItLeavesOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.fail.Store(true)
	ids := e.enqueue(2)
	eventually(t, "two dead letters", func() bool { return e.dead() == 2 })
	e.fail.Store(false)
	c := e.client()
	c.signIn(operatorName)
	qp := "/ui/queues/" + testQueue

	n, err := e.b.Purge(context.Background(), testQueue, ids[0])
	require.NoError(t, err)
	require.Equal(t, 1, n)
	r := c.do(http.MethodPost, qp+"/dead/confirm", url.Values{"action": {"redrive:ids"}, "ids": {ids[0], ids[1]}}, true)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, "Re-drive 1 dead letter</strong>")
	require.Contains(t, r.body, "1 of the selected are no longer dead letters and are left out.")
	yes := formOf(t, r.body)
	require.Equal(t, []string{ids[1]}, yes["ids"], "the Yes posts what the confirmation stated")

	r = c.do(http.MethodPost, qp+"/dead/redrive", yes, true)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, "Re-drove 1 of 1 dead letter.")
	require.NotContains(t, r.body, ids[0])
	actions := auditActions(t, e)
	require.Contains(t, actions, "dlq.redrive olive ok")
	require.NotContains(t, actions, "dlq.redrive olive failed")
}

// TestActionsTheUIRefusesAreAudited: an operator's action the UI refuses
// itself (a size that is no number, an unknown pool action, a dead-letter
// action with nothing selected) calls no API route, and is audited as
// failed with the UI's reason, as the API audits the actions it refuses.
// Before, the UI marked every action as audited by the API route it would
// call, so these left no entry.
func TestActionsTheUIRefusesAreAudited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	c := e.client()
	c.signIn(operatorName)
	for _, a := range []struct {
		path string
		form url.Values
		code int
		why  string
	}{
		{"/ui/pools/" + testQueue + "/resize", url.Values{"size": {"many"}}, http.StatusBadRequest, "size: want a whole number"},
		{"/ui/pools/" + testQueue + "/explode", url.Values{}, http.StatusNotFound, "no pool action explode"},
		{"/ui/queues/" + testQueue + "/dead/redrive", url.Values{"scope": {"ids"}}, http.StatusBadRequest, "no dead letter selected"},
	} {
		r := c.do(http.MethodPost, a.path, a.form, true)
		require.Equal(t, a.code, r.code, r.body)
		found := false
		for _, en := range auditEntries(t, e) {
			if en.Identity == operatorName && en.Result == admin.AuditFailed && en.Status == a.code && strings.Contains(en.Error, a.why) {
				found = true
			}
		}
		require.True(t, found, "%s: audited as failed with %q", a.path, a.why)
	}
}
