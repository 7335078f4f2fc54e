package admin_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
)

func TestLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.3.4.5:1": true, "[::1]:8080": true, "localhost:8080": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.1:8080": false, "admin.example.com:80": false, "nonsense": false,
	} {
		require.Equal(t, want, admin.Loopback(addr), addr)
	}
}

// TestClosedByDefault: off loopback, no credentials is a problem on
// admin.listen unless mode none says so; credentials are checked.
func TestClosedByDefault(t *testing.T) {
	t.Setenv("PLBA_TEST_ADMIN_TOKEN", "env-token-0123456789abcdef")
	open := admin.DefaultConfig()
	open.Listen = "0.0.0.0:8080"
	err := open.Validate()
	require.Error(t, err)
	require.Contains(t, err.Error(), "listen: 0.0.0.0:8080 is not a loopback address and admin.auth has no credentials configured")

	none := open
	none.Auth.Mode = admin.AuthNone
	require.NoError(t, none.Validate())

	withToken := open
	withToken.Auth.Tokens = []admin.TokenConfig{{Name: "ci", Role: admin.RoleOperator, TokenEnv: "PLBA_TEST_ADMIN_TOKEN"}}
	require.NoError(t, withToken.Validate())

	withUser := open
	withUser.Auth.Users = []admin.UserConfig{{Name: "alice", Role: admin.RoleAdmin, PasswordHash: hash(t, "alicealice")}}
	require.NoError(t, withUser.Validate())

	for _, c := range []struct {
		name string
		auth admin.AuthConfig
		want string
	}{
		{"mode", admin.AuthConfig{Mode: "off"}, `auth.mode: must be "auto" or "none" (got "off")`},
		{"env unset", admin.AuthConfig{Tokens: []admin.TokenConfig{{Name: "a", Role: "viewer", TokenEnv: "PLBA_TEST_NO_SUCH_VAR"}}},
			"auth.tokens[0]: token_env: environment variable PLBA_TEST_NO_SUCH_VAR is not set"},
		{"no token", admin.AuthConfig{Tokens: []admin.TokenConfig{{Name: "a", Role: "viewer"}}}, "auth.tokens[0]: no token"},
		{"both", admin.AuthConfig{Tokens: []admin.TokenConfig{{Name: "a", Role: "viewer", Token: "0123456789abcdef0", TokenEnv: "PLBA_TEST_ADMIN_TOKEN"}}}, "not both"},
		{"short", admin.AuthConfig{Tokens: []admin.TokenConfig{{Name: "a", Role: "viewer", Token: "short"}}}, "auth.tokens[0]: token shorter than 16"},
		{"role", admin.AuthConfig{Tokens: []admin.TokenConfig{{Name: "a", Role: "root", Token: "0123456789abcdef0"}}}, `auth.tokens[0].role: unknown role "root"`},
		{"public role", admin.AuthConfig{Users: []admin.UserConfig{{Name: "a", Role: admin.RolePublic, PasswordHash: hash(t, "xxxxxxxx")}}}, `auth.users[0].role: unknown role "public"`},
		{"same token", admin.AuthConfig{Tokens: []admin.TokenConfig{{Name: "a", Role: "viewer", Token: "0123456789abcdef0"}, {Name: "b", Role: "admin", Token: "0123456789abcdef0"}}},
			"auth.tokens[1]: same token as auth.tokens[0]"},
		{"same name", admin.AuthConfig{Tokens: []admin.TokenConfig{{Name: "a", Role: "viewer", Token: "0123456789abcdef0"}},
			Users: []admin.UserConfig{{Name: "a", Role: "viewer", PasswordHash: hash(t, "xxxxxxxx")}}}, `auth.users[0].name: "a" is also the name of auth.tokens[0]`},
		{"no name", admin.AuthConfig{Users: []admin.UserConfig{{Role: "viewer", PasswordHash: hash(t, "xxxxxxxx")}}}, "auth.users[0].name: is empty"},
		{"no hash", admin.AuthConfig{Users: []admin.UserConfig{{Name: "a", Role: "viewer"}}}, "auth.users[0].password_hash: is empty"},
		{"bad hash", admin.AuthConfig{Users: []admin.UserConfig{{Name: "a", Role: "viewer", PasswordHash: "plaintext"}}}, "auth.users[0].password_hash: not a bcrypt hash"},
		{"negative", admin.AuthConfig{SessionTTL: -1, FailedAttempts: -1}, "auth.session_ttl: must not be negative"},
		// The Authorization header's token is trimmed: a configured token
		// with white space around it could never match.
		{"token spaces", admin.AuthConfig{Tokens: []admin.TokenConfig{{Name: "a", Role: "viewer", Token: " 0123456789abcdef0 "}}},
			"auth.tokens[0].token: has white space around it"},
		{"token newline", admin.AuthConfig{Tokens: []admin.TokenConfig{{Name: "a", Role: "viewer", Token: "0123456789abcdef0\n"}}},
			"auth.tokens[0].token: has white space around it"},
		// A sign-in's name is compared as given: "alice " would refuse "alice".
		{"user name spaces", admin.AuthConfig{Users: []admin.UserConfig{{Name: "alice ", Role: "viewer", PasswordHash: hash(t, "xxxxxxxx")}}},
			"auth.users[0].name: has white space around it"},
	} {
		cfg := admin.DefaultConfig()
		cfg.Auth = c.auth
		err := cfg.Validate()
		require.Error(t, err, c.name)
		require.Contains(t, err.Error(), c.want, c.name)
	}

	half := admin.DefaultConfig()
	half.TLS.CertFile = "cert.pem"
	require.ErrorContains(t, half.Validate(), "tls: cert_file and key_file go together")
	probes := admin.DefaultConfig()
	probes.ProbesListen = "nowhere"
	require.ErrorContains(t, probes.Validate(), `probes_listen: "nowhere" is not host:port`)
}
