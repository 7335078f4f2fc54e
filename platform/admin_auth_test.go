package platform_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/admintest"
	"github.com/plba/plba/platform/config"
)

var platformTokens = map[admin.Role]string{
	admin.RoleViewer:   "viewer-token-0123456789",
	admin.RoleOperator: "operator-token-0123456789",
	admin.RoleAdmin:    "admin-token-0123456789",
}

// securedJetStream is the platform on embedded JetStream in dir with a
// token per role.
func securedJetStream(t *testing.T, dir string) *config.Config {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "admin:\n  listen: 127.0.0.1:0\n  auth:\n    tokens:\n")
	for r, tok := range platformTokens {
		fmt.Fprintf(&b, "      - {name: ci-%s, role: %s, token: %s}\n", r, r, tok)
	}
	fmt.Fprintf(&b, "log:\n  level: error\nqueue:\n  backend: jetstream\n  jetstream:\n    embedded:\n      store_dir: %s\n", filepath.Join(dir, "nats"))
	f := filepath.Join(dir, "host.yaml")
	require.NoError(t, os.WriteFile(f, []byte(b.String()), 0o600))
	cfg, err := config.Load(config.Options{Files: []string{f}, Environ: []string{}})
	require.NoError(t, err)
	return cfg
}

func startPlatform(t *testing.T, cfg *config.Config) (*fxtest.App, *admin.Server) {
	t.Helper()
	var srv *admin.Server
	app := fxtest.New(t, platform.Module(cfg, platform.Info{}), fx.Populate(&srv))
	app.RequireStart()
	return app, srv
}

// TestPlatformRoutesAndDurableAudit walks every route the whole platform
// registers with each role and without credentials, checks that none
// that changes state is open to a viewer, and shows that on
// JetStream the audit survives a restart of the host.
func TestPlatformRoutesAndDurableAudit(t *testing.T) {
	dir := t.TempDir()
	cfg := securedJetStream(t, dir)
	app, srv := startPlatform(t, cfg)
	base := "http://" + srv.Addr()
	admintest.CheckRoles(t, base, srv.Routes(), platformTokens)
	// No state-changing route is open to a viewer: only signing in and
	// out (with their own checks: the password, the session's CSRF token)
	// need no role.
	for _, r := range srv.Routes() {
		method, _, hasMethod := strings.Cut(r.Pattern, " ") // a pattern without a method takes every one
		if (hasMethod && method == http.MethodGet) || r.Role.Allows(admin.RoleOperator) {
			continue
		}
		require.Contains(t, []string{"POST /admin/v1/session", "DELETE /admin/v1/session", "POST /ui/signin", "POST /ui/signout"}, r.Pattern,
			"a state-changing route a viewer may call")
	}

	req, err := http.NewRequest(http.MethodPut, base+admin.LogLevelPath, strings.NewReader(`{"level":"warn"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+platformTokens[admin.RoleOperator])
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	app.RequireStop()

	app, srv = startPlatform(t, cfg)
	defer app.RequireStop()
	req, err = http.NewRequest(http.MethodGet, "http://"+srv.Addr()+admin.AuditPath, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+platformTokens[admin.RoleViewer])
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var p admin.AuditPage
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
	require.NotEmpty(t, p.Entries)
	newest := p.Entries[0]
	require.Equal(t, "loglevel.set", newest.Action)
	require.Equal(t, "ci-operator", newest.Identity)
	require.Equal(t, map[string]any{"from": "error", "to": "warn"}, newest.Params)
}
