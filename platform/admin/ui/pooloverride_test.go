package ui_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPoolsSayAnOverrideEndsWithTheProcess: a pause or resize an
// operator makes is an override the API says is kept only until a
// restart on a backend without a durable store (memory): the pools'
// table says so, as ctl pool does, rather than pass it off as lasting.
func TestPoolsSayAnOverrideEndsWithTheProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	c := e.client()
	c.signIn(operatorName)
	r := c.get("/ui/pools")
	require.Equal(t, http.StatusOK, r.code)
	require.NotContains(t, r.body, "until restart", "no override yet")
	r = c.do(http.MethodPost, "/ui/pools/"+testQueue+"/resize", url.Values{"size": {"3"}}, true)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, "until restart")
	r = c.do(http.MethodPost, "/ui/pools/"+testQueue+"/pause", url.Values{}, true)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Regexp(t, `override: paused, 3 workers, until restart`, r.body)
}
