package ui_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// A UI action refused before it called the API is audited with the
// request's path as the server records every other call: escaped. A
// queue named "a/b" (a slash inside one path segment) was recorded as
// /ui/pools/a/b/resize, a path that names another route and another
// queue, while the API's entries spell it a%2Fb.
func TestRefusedUIActionAuditsTheEscapedPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	c := e.client()
	c.signIn(operatorName)
	res := c.do(http.MethodPost, "/ui/pools/a%2Fb/resize", url.Values{"size": {"many"}}, true)
	require.Equal(t, http.StatusBadRequest, res.code, res.body)
	found := false
	for _, en := range auditEntries(t, e) {
		if en.Identity == operatorName && en.Error == "size: want a whole number of workers" {
			require.Equal(t, "/ui/pools/a%2Fb/resize", en.Target, "%+v", en)
			found = true
		}
	}
	require.True(t, found, "the refusal audited")
}
