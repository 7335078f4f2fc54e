package host

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCtlRefusesATimeoutThatIsNotPositive: `ctl --timeout` of zero or less
// is a usage error (exit 2) naming the flag, and sends nothing. It made
// every call fail at once with "context deadline exceeded", exit 1, as
// if the server had not answered in time.
func TestCtlRefusesATimeoutThatIsNotPositive(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = w.Write([]byte(`{"queues":[]}`))
	}))
	t.Cleanup(srv.Close)
	t.Setenv(CtlTokenEnv, "t")
	for _, timeout := range []string{"0", "-5s"} {
		var out, errb bytes.Buffer
		code := execute([]string{"ctl", "--url", srv.URL, "--timeout", timeout, "queues"}, &out, &errb)
		require.Equal(t, ExitUsage, code, "--timeout %s: %s", timeout, errb.String())
		require.Contains(t, errb.String(), "--timeout", "the flag is named")
	}
	require.Zero(t, calls.Load(), "a usage error sends nothing")
	var out, errb bytes.Buffer
	require.Equal(t, ExitOK, execute([]string{"ctl", "--url", srv.URL, "--timeout", "5s", "queues"}, &out, &errb), errb.String())
}
