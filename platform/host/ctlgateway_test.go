package host

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCtlGatewayTimeoutOfAnActionMayBeDone: a proxy in front of the
// admin server that gives up waiting (504) or loses the server's answer
// (502) answers with a page of its own, not the API's error: the server
// may have done the action all the same. Ctl says so, as for a call it
// got no answer to itself; the API's own error answer is shown as the
// API words it.
func TestCtlGatewayTimeoutOfAnActionMayBeDone(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/admin/v1/loglevel" { // the API's own error answer
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte(`{"error":"backend: refused"}`))
			return
		}
		code := http.StatusGatewayTimeout
		if r.Method == http.MethodGet {
			code = http.StatusBadGateway
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(code)
		_, _ = w.Write([]byte("<html><body><h1>Gateway Time-out</h1></body></html>"))
	}))
	t.Cleanup(srv.Close)
	t.Setenv(CtlTokenEnv, "operator-token")
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := execute(append([]string{"ctl", "--url", srv.URL}, args...), &out, &errb)
		return code, errb.String()
	}
	code, stderr := run("pool", "pause", "default")
	require.Equal(t, ExitFailure, code)
	require.Contains(t, stderr, "504")
	require.Contains(t, stderr, "the server may have done it or not", stderr)

	code, stderr = run("queues")
	require.Equal(t, ExitFailure, code)
	require.NotContains(t, stderr, "may have done it", "a read")

	code, stderr = run("loglevel", "debug")
	require.Equal(t, ExitFailure, code)
	require.Contains(t, stderr, "backend: refused")
	require.NotContains(t, stderr, "may have done it", "the API's own answer: %s", stderr)
}
