package host

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCtlLoglevelRefusesAnUnknownLevelAsUsage: `ctl loglevel verbose` is
// a usage error (exit 2, as `pool resize QUEUE abc` is), refused before
// any call: it exited 1, the status of a call that failed, after the
// server's 400.
func TestCtlLoglevelRefusesAnUnknownLevelAsUsage(t *testing.T) {
	called := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called = true
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"admin: log: level must be one of debug, info, warn, error"}`))
	}))
	t.Cleanup(srv.Close)
	var out, errb bytes.Buffer
	code := execute([]string{"ctl", "--url", srv.URL, "loglevel", "verbose"}, &out, &errb)
	require.Equal(t, ExitUsage, code, errb.String())
	require.Contains(t, errb.String(), "debug, info, warn, error")
	require.False(t, called, "a usage error calls nothing")
}
