package control

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPprofCmdlineHidesSetValues: the command line pprof serves shows
// the host's flags but not the values given with --set, which may be
// secrets (a token, a password, a URL with credentials): GET
// /admin/v1/config shows the effective configuration with its secrets
// redacted, and the command line served the same secrets as typed.
func TestPprofCmdlineHidesSetValues(t *testing.T) {
	args := []string{"/usr/bin/host", "run", "--config", "prod.yaml", "--set", "admin.auth.tokens.0.token=s3cret-token",
		"--set=imap.password=s3cret-pw", "--set", "queue.nats_url=nats://u:s3cret@h:4222", "--set"}
	saved := os.Args
	os.Args = args // what pprof's handler serves (the test does not run in parallel)
	t.Cleanup(func() { os.Args = saved })
	var h http.Handler
	for _, r := range pprofRoutes() {
		if r.Pattern == "GET "+PprofPrefix+"cmdline" {
			h = r.Handler
		}
	}
	require.NotNil(t, h, "the cmdline route")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PprofPrefix+"cmdline", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	got := rec.Body.String()
	require.NotContains(t, got, "s3cret")
	require.Equal(t, strings.Join([]string{"/usr/bin/host", "run", "--config", "prod.yaml", "--set", "admin.auth.tokens.0.token=[redacted]",
		"--set=imap.password=[redacted]", "--set", "queue.nats_url=[redacted]", "--set"}, "\x00"), got)
}
