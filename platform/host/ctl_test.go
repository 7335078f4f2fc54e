package host

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCtlTokenAndExitStatuses: the token from --token-file (over
// PLBA_CTL_TOKEN) is sent as a bearer token; 401 and 403 exit 3, another
// error 1; the audit page prints as a table.
func TestCtlTokenAndExitStatuses(t *testing.T) {
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		switch r.Header.Get("Authorization") {
		case "Bearer viewer-token":
			if r.Method != http.MethodGet {
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(`{"error":"admin: operator role required"}`))
				return
			}
			if r.URL.Path == "/admin/v1/audit" {
				_, _ = w.Write([]byte(`{"entries":[{"id":1,"time":"2026-01-02T03:04:05Z","identity":"ops","role":"operator","action":"pool.pause","target":"pool/default","result":"ok","remote":"127.0.0.1:5"}]}`))
				return
			}
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"error":"boom"}`))
		default:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"admin: credentials required"}`))
		}
	}))
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("viewer-token\n"), 0o600))
	run := func(env string, args ...string) (int, string, string) {
		t.Setenv(CtlTokenEnv, env)
		var out, errb bytes.Buffer
		code := execute(append([]string{"ctl", "--url", srv.URL}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	code, _, stderr := run("", "queues")
	require.Equal(t, ExitDenied, code, stderr)
	require.Contains(t, stderr, "no token")
	code, _, _ = run("wrong", "queues")
	require.Equal(t, ExitDenied, code)
	code, _, stderr = run("wrong", "pool", "pause", "default", "--token-file", tokenFile)
	require.Equal(t, ExitDenied, code, "403: %s", stderr)
	require.Equal(t, "Bearer viewer-token", gotAuth, "--token-file wins over the environment")
	require.Contains(t, stderr, "operator role required")
	code, _, stderr = run("viewer-token", "queues")
	require.Equal(t, ExitFailure, code)
	require.Contains(t, stderr, "boom")
	code, stdout, _ := run("viewer-token", "audit")
	require.Equal(t, ExitOK, code)
	require.Contains(t, stdout, "pool.pause")
	require.Contains(t, stdout, "ops")
	code, _, _ = run("viewer-token", "audit", "-o", "yaml")
	require.Equal(t, ExitUsage, code)
}
