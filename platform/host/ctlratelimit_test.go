package host

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/config"
)

// TestCtlRateLimitedIsDenied: the admin server refuses an address that
// sent too many wrong tokens with 429 (before it looks at the token), and
// ctl exits 3, denied, as for the 401 before it: the call was refused,
// not done, and retrying it at once is refused again. It exited 1, as for
// a call that failed.
func TestCtlRateLimitedIsDenied(t *testing.T) {
	f := filepath.Join(t.TempDir(), "host.yaml")
	require.NoError(t, os.WriteFile(f, []byte("admin:\n  listen: 127.0.0.1:0\n  auth:\n    failed_attempts: 1\n    failed_window: 1h\n"+
		"    tokens:\n      - {name: ci, role: viewer, token: viewer-token-0123456789}\nlog:\n  level: error\n"), 0o600))
	cfg, err := config.Load(config.Options{Files: []string{f}, Environ: []string{}})
	require.NoError(t, err)
	var srv *admin.Server
	app := fxtest.New(t, platform.Module(cfg, platform.Info{}), fx.Populate(&srv))
	app.RequireStart()
	defer app.RequireStop()

	run := func(token string) (int, string) {
		t.Setenv(CtlTokenEnv, token)
		var out, errb bytes.Buffer
		code := execute([]string{"ctl", "--url", "http://" + srv.Addr(), "queues"}, &out, &errb)
		return code, errb.String()
	}
	code, stderr := run("wrong-token")
	require.Equal(t, ExitDenied, code, "a wrong token: %s", stderr)
	require.Contains(t, stderr, "401")
	for _, token := range []string{"wrong-token", "viewer-token-0123456789"} {
		code, stderr = run(token)
		require.Contains(t, stderr, "429", "the address is rate-limited")
		require.Equal(t, ExitDenied, code, "429: %s", stderr)
	}
}
