package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDemoSignsInToTheWebUI: the built host with the embedded demo (what
// `make run` starts) prints the demo user's credentials and the UI's
// address at start; a newcomer signs in with them through the UI's form
// and sees the overview and the mailorder app's Orders page.
func TestDemoSignsInToTheWebUI(t *testing.T) {
	t.Parallel()
	p := startHost(t, nil, jsonLogs...)
	p.adminAddr(t)
	var demo struct {
		Msg      string `json:"msg"`
		UI       string `json:"ui"`
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	require.Eventually(t, func() bool {
		for _, l := range strings.Split(p.output(), "\n") {
			if json.Unmarshal([]byte(l), &demo) == nil && strings.HasPrefix(demo.Msg, "admin: DEMO user") {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "the demo prints its credentials: %s", p.output())
	require.Equal(t, "demo", demo.Name)
	require.Contains(t, demo.Msg, "demo only")
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	get := func(u string) string {
		t.Helper()
		res, err := c.Get(u)
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode, string(b))
		return string(b)
	}
	form := get(demo.UI) // redirected to the sign-in
	m := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(form)
	require.NotNil(t, m, form)
	res, err := c.PostForm(strings.TrimSuffix(demo.UI, "/")+"/signin", url.Values{"token": {m[1]}, "name": {demo.Name}, "password": {demo.Password}})
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, string(b))
	require.Contains(t, string(b), "<h1>Overview</h1>")
	require.Contains(t, string(b), "demo <span class=\"role role-operator\">operator</span>")
	require.Eventually(t, func() bool {
		return strings.Contains(get(demo.UI+"apps/orders"), "orders stored (sqlite)")
	}, 30*time.Second, 100*time.Millisecond)
}
