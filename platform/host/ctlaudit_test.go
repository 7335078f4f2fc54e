package host

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCtlAuditRefusesABadLimit: `ctl audit --limit` out of 1 to 1000 is a
// usage error (exit 2) that sends nothing. A --limit of 0 or less was
// dropped silently and the server's default page printed as the one
// asked for; one over 1000 went to the server, which refused it, and ctl
// exited 1 as for a failed call.
func TestCtlAuditRefusesABadLimit(t *testing.T) {
	var calls atomic.Int32
	var query atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		query.Store(r.URL.RawQuery)
		_, _ = w.Write([]byte(`{"entries":[]}`))
	}))
	t.Cleanup(srv.Close)
	t.Setenv(CtlTokenEnv, "t")
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := execute(append([]string{"ctl", "--url", srv.URL, "audit"}, args...), &out, &errb)
		return code, errb.String()
	}
	for _, args := range [][]string{{"--limit", "0"}, {"--limit", "-5"}, {"--limit", "1001"}} {
		code, stderr := run(args...)
		require.Equal(t, ExitUsage, code, "%v: %s", args, stderr)
		require.Contains(t, stderr, "--limit", "%v: the flag is named", args)
	}
	require.Zero(t, calls.Load(), "a usage error sends nothing")
	code, stderr := run("--limit", "1000")
	require.Equal(t, ExitOK, code, stderr)
	require.EqualValues(t, 1, calls.Load())
	require.Equal(t, "limit=1000", query.Load())
	code, stderr = run()
	require.Equal(t, ExitOK, code, stderr)
	require.Equal(t, "", query.Load(), "no --limit: the server's default")
}
