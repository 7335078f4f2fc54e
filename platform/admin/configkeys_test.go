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

// A zero in the admin section stands for its default, and the
// configuration shows the default the server runs with (`host config
// show`, the digest), as it does for the other sections: admin.read_timeout:
// 0s showed 0s, and a digest unlike the default configuration's, while the
// server read with 10s.
func TestZerosShowTheDefaultsTheServerUses(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("admin", admin.DefaultConfig()))
	load := func(sets ...string) *config.Config {
		cfg, err := config.Load(config.Options{Registry: r, Environ: []string{}, Sets: sets})
		require.NoError(t, err)
		return cfg
	}
	zeros := load("admin.read_header_timeout=0s", "admin.read_timeout=0s", "admin.write_timeout=0s",
		"admin.idle_timeout=0s", "admin.shutdown_timeout=0s", "admin.auth.mode=", "admin.auth.session_ttl=0s",
		"admin.auth.max_sessions=0", "admin.auth.failed_attempts=0", "admin.auth.failed_window=0s",
		"admin.audit.ring_size=0", "admin.audit.max_age=0s", "admin.audit.max_msgs=0")
	var got admin.Config
	require.NoError(t, zeros.Decode("admin", &got))
	require.Equal(t, admin.DefaultConfig(), got)
	require.Empty(t, got.Audit.Stream, "the stream stays free to follow the stream prefix")
	require.Equal(t, string(load().YAML()), string(zeros.YAML()))
	require.Equal(t, load().Digest(), zeros.Digest())
}
