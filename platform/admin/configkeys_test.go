package admin_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/config"
)

// TestAuthProblemsUseTheConfigurationsKeys: a problem of an entry of
// admin.auth.users or admin.auth.tokens is keyed as the configuration
// keys list items (admin.auth.users[0].name), so that `host config show`
// marks the field at fault. They were keyed admin.auth.users.0.name, a
// key the configuration does not have: the mark went on the whole list.
func TestAuthProblemsUseTheConfigurationsKeys(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("admin", admin.DefaultConfig()))
	file := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(file, []byte("admin:\n  auth:\n    users:\n      - name: \"\"\n        role: viewer\n        password_hash: x\n    tokens:\n      - name: t\n        role: viewer\n        token: short\n"), 0o600))
	cfg, err := config.Load(config.Options{Registry: r, Environ: []string{}, Files: []string{file}, Partial: true})
	var ce *config.Error
	require.True(t, errors.As(err, &ce), "not a configuration error: %v", err)
	keys := map[string]bool{}
	for _, p := range ce.Problems {
		keys[p.Key] = true
		require.Equal(t, file, p.Source, p.Error())
	}
	require.Equal(t, map[string]bool{
		"admin.auth.users[0].name": true, "admin.auth.users[0].password_hash": true, "admin.auth.tokens[0]": true,
	}, keys, "%v", err)

	out, err := cfg.Show([]string{"admin"}, ce.Problems)
	require.NoError(t, err)
	var nameLine string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, `name: ""`) {
			nameLine = l
		}
	}
	require.Contains(t, nameLine, "# problem: is empty", "\n%s", out)
}
