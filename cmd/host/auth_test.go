package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A non-loopback admin.listen without credentials is a configuration
// error: `config validate` and `run` exit 2 naming the file, admin.listen,
// admin.auth and why; admin.auth.mode none makes it valid on purpose.
func TestOpenAdminOffLoopbackExits2(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "open.yaml", "admin:\n  listen: 0.0.0.0:8080\n")
	for _, cmd := range [][]string{{"config", "validate"}, {"run"}} {
		r := runHostCmd(t, nil, append(cmd, "--config", path)...)
		require.Equal(t, 2, r.code, "%v: %s", cmd, r.stderr)
		require.Contains(t, r.stderr, path+": admin.listen: 0.0.0.0:8080 is not a loopback address and admin.auth has no credentials configured")
		require.Contains(t, r.stderr, "admin.auth.mode: none")
	}
	r := runHostCmd(t, nil, "config", "validate", "--config", path, "--set", "admin.auth.mode=none")
	require.Equal(t, 0, r.code, r.stderr)
}

// authCall calls url with a bearer token ("" for none).
func authCall(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The built host with a viewer token from a file and an operator token
// from the environment: no credentials get 401, the viewer reads and gets
// 403 on a change, the operator changes the log level, and the audit
// shows who did it. With admin.auth.mode none the host warns at start.
func TestAdminTokensThroughTheBinary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	viewerFile := filepath.Join(dir, "viewer.token")
	require.NoError(t, os.WriteFile(viewerFile, []byte("viewer-token-0123456789\n"), 0o600))
	cfg := writeFile(t, "auth.yaml", `admin:
  auth:
    tokens:
      - name: dashboards
        role: viewer
        token_file: `+viewerFile+`
      - name: ci
        role: operator
        token_env: PLBA_TEST_OPERATOR_TOKEN
`)
	p := startHost(t, []string{"PLBA_TEST_OPERATOR_TOKEN=operator-token-0123456789"}, append(jsonLogs, "--config", cfg)...)
	base := "http://" + p.adminAddr(t)
	const viewer, operator = "viewer-token-0123456789", "operator-token-0123456789"

	code, _ := authCall(t, http.MethodGet, base+"/admin/v1/status", "", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = authCall(t, http.MethodGet, base+"/admin/v1/status", "wrong-token-0123456789", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = authCall(t, http.MethodGet, base+"/admin/v1/status", viewer, "")
	require.Equal(t, http.StatusOK, code)
	code, _ = authCall(t, http.MethodGet, base+"/livez", "", "")
	require.Equal(t, http.StatusOK, code)
	code, body := authCall(t, http.MethodPut, base+"/admin/v1/loglevel", viewer, `{"level":"debug"}`)
	require.Equal(t, http.StatusForbidden, code, body)
	require.Contains(t, body, "needs operator")
	code, body = authCall(t, http.MethodPut, base+"/admin/v1/loglevel", operator, `{"level":"debug"}`)
	require.Equal(t, http.StatusOK, code, body)
	code, body = authCall(t, http.MethodGet, base+"/admin/v1/audit", viewer, "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"action": "loglevel.set"`)
	require.Contains(t, body, `"identity": "ci"`)
	require.Contains(t, body, `"identity": "dashboards"`) // the refused change
	require.Eventually(t, func() bool { return strings.Contains(p.output(), `"msg":"admin: authentication on"`) },
		10*time.Second, 20*time.Millisecond)

	none := startHost(t, nil, append(jsonLogs, "--set", "admin.auth.mode=none")...)
	none.adminAddr(t)
	require.Eventually(t, func() bool {
		for _, l := range strings.Split(none.output(), "\n") {
			if strings.Contains(l, `"level":"warn"`) && strings.Contains(l, "authentication is OFF (admin.auth.mode: none)") {
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond)
}
