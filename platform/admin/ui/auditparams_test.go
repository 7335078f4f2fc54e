package ui_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// auditRow is one row of the audit page's table.
var auditRow = regexp.MustCompile(`(?s)<tr><td><time.*?</tr>`)

// TestAuditPageShowsTheParameters: the audit page shows each entry's
// parameters as the API records them, so that an entry says what was
// done and not only to what: the size a pool was resized to, how many
// dead letters a re-drive matched and did.
func TestAuditPageShowsTheParameters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.fail.Store(true)
	e.enqueue(2)
	eventually(t, "two dead letters", func() bool { return e.dead() == 2 })
	e.fail.Store(false)
	c := e.client()
	c.signIn(operatorName)
	r := c.do(http.MethodPost, "/ui/pools/"+testQueue+"/resize", url.Values{"size": {"7"}}, true)
	require.Equal(t, http.StatusOK, r.code, r.body)
	r = c.do(http.MethodPost, "/ui/queues/"+testQueue+"/dead/redrive", url.Values{"scope": {"filter"}}, true)
	require.Equal(t, http.StatusOK, r.code, r.body)

	rows := map[string]string{}
	for _, row := range auditRow.FindAllString(c.get("/ui/audit").body, -1) {
		row = html.UnescapeString(row)
		for _, a := range []string{"pool.resize", "dlq.redrive"} {
			if regexp.MustCompile(`<code>` + regexp.QuoteMeta(a) + `</code>`).MatchString(row) {
				rows[a] = row
			}
		}
	}
	require.Contains(t, rows, "pool.resize")
	require.Contains(t, rows["pool.resize"], `"size":7`)
	require.Contains(t, rows, "dlq.redrive")
	require.Contains(t, rows["dlq.redrive"], `"matched":2`)
	require.Contains(t, rows["dlq.redrive"], `"done":2`)
}
