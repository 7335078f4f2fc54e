package admin

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/plba/plba/platform/admin/auth"
	"github.com/plba/plba/platform/config"
)

// The values of admin.auth.mode.
const (
	// AuthAuto (the default, also the empty mode) requires credentials
	// when any are configured. Without credentials it turns
	// authentication off on a loopback address (logged at warn on every
	// start) and refuses any other address: the server is closed by
	// default.
	AuthAuto = "auto"
	// AuthNone turns authentication off explicitly: every request is the
	// identity "anonymous" with RoleAdmin (logged at warn on every start).
	AuthNone = "none"
)

// AuthConfig is admin.auth: who may call the admin server.
type AuthConfig struct {
	// Mode is AuthAuto (default) or AuthNone.
	Mode string `koanf:"mode"`
	// Tokens are bearer tokens for machines (Authorization: Bearer ...).
	Tokens []TokenConfig `koanf:"tokens"`
	// Users are people who sign in with a password at
	// POST /admin/v1/session to a session cookie.
	Users []UserConfig `koanf:"users"`
	// SessionTTL is how long a session lasts after its sign-in. Default 8h.
	SessionTTL time.Duration `koanf:"session_ttl"`
	// MaxSessions bounds the sessions held in memory; a sign-in past it
	// ends a session of the user holding the most (the one closest to its
	// expiry), so that one user signing in again and again ends their own
	// sessions, not everyone else's. Default 1000.
	MaxSessions int `koanf:"max_sessions"`
	// FailedAttempts failed sign-ins or bearer tokens from one address
	// are allowed at once; then one more per FailedWindow/FailedAttempts
	// (429 Too Many Requests until then). Default 5 per 1m.
	FailedAttempts int `koanf:"failed_attempts"`
	// FailedWindow: see FailedAttempts.
	FailedWindow time.Duration `koanf:"failed_window"`
	// SecureCookies marks the session cookie Secure (sent by browsers
	// over HTTPS only) although the server itself serves plain HTTP:
	// behind a proxy that terminates TLS. With admin.tls it is Secure
	// anyway. Default false.
	SecureCookies bool `koanf:"secure_cookies"`
	// Demo adds the user DemoUser and the bearer token DemoToken, both
	// with RoleOperator, with a password and a token made at random at
	// every start and printed at warn in the start-up log with the web
	// UI's address: for trying the host out (configs/demo.yaml), never
	// for production. Only with a loopback admin.listen. Default false.
	Demo bool `koanf:"demo"`
}

// The names of the user and the token admin.auth.demo adds.
const (
	DemoUser  = "demo"
	DemoToken = "demo-token"
)

// TokenConfig is one bearer token.
type TokenConfig struct {
	// Name identifies the token in the audit.
	Name string `koanf:"name"`
	// Role is viewer, operator or admin.
	Role Role `koanf:"role"`
	// Token is the token itself; better given as token_file (a file
	// holding it) or token_env (an environment variable holding it).
	// The server keeps only its SHA-256. The token of a file or a
	// variable is trimmed of white space, like the token of an
	// Authorization header; a token given inline with white space
	// around it is a configuration error.
	Token string `koanf:"token" secret:"true"`
	// TokenEnv names an environment variable holding the token.
	TokenEnv string `koanf:"token_env"`
}

// UserConfig is one user who signs in with a password.
type UserConfig struct {
	// Name is what the user signs in with, compared as given: white
	// space around it is a configuration error.
	Name string `koanf:"name"`
	// Role is viewer, operator or admin.
	Role Role `koanf:"role"`
	// PasswordHash is the bcrypt hash of the password (`host ctl users
	// hash-password` prints one); password_hash_file reads it from a file.
	PasswordHash string `koanf:"password_hash" secret:"true"`
}

// MinTokenLength is the shortest bearer token the server accepts in its
// configuration (a token is a random secret, not a password).
const MinTokenLength = 16

// Defaults of AuthConfig.
const (
	DefaultSessionTTL     = 8 * time.Hour
	DefaultMaxSessions    = 1000
	DefaultFailedAttempts = 5
	DefaultFailedWindow   = time.Minute
)

func (c AuthConfig) withDefaults() AuthConfig {
	if c.Mode == "" {
		c.Mode = AuthAuto
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.FailedAttempts == 0 {
		c.FailedAttempts = DefaultFailedAttempts
	}
	if c.FailedWindow == 0 {
		c.FailedWindow = DefaultFailedWindow
	}
	return c
}

// HasCredentials reports whether any token or user is configured.
// The demo user counts.
func (c AuthConfig) HasCredentials() bool { return len(c.Tokens)+len(c.Users) > 0 || c.Demo }

// tokenValue is the token t stands for: its own value or its
// environment variable's.
func (t TokenConfig) tokenValue() (string, error) {
	switch {
	case t.Token != "" && t.TokenEnv != "":
		return "", fmt.Errorf("give the token once: token (or token_file) or token_env, not both")
	case t.TokenEnv != "":
		v, ok := os.LookupEnv(t.TokenEnv)
		if !ok || strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("token_env: environment variable %s is not set", t.TokenEnv)
		}
		return strings.TrimSpace(v), nil
	case t.Token == "":
		return "", fmt.Errorf("no token: set token_file or token_env")
	}
	return t.Token, nil
}

// validate checks the section; listen is admin.listen, to close a
// non-loopback listener without credentials.
func (c AuthConfig) validate(listen string) config.Problems {
	var ps config.Problems
	switch c.Mode {
	case "", AuthAuto, AuthNone:
	default:
		ps.Add("auth.mode", "must be %q or %q (got %q)", AuthAuto, AuthNone, c.Mode)
	}
	names := map[string]string{}
	seen := func(key, name string) {
		if name == "" {
			ps.Add(key+".name", "is empty")
			return
		}
		if prev, ok := names[name]; ok {
			ps.Add(key+".name", "%q is also the name of %s", name, prev)
			return
		}
		names[name] = key
	}
	role := func(key string, r Role) {
		if _, err := ParseRole(string(r)); err != nil {
			ps.Add(key+".role", "%v", err)
		}
	}
	digests := map[auth.Digest]string{}
	for i, t := range c.Tokens {
		key := fmt.Sprintf("auth.tokens[%d]", i)
		seen(key, t.Name)
		role(key, t.Role)
		v, err := t.tokenValue()
		switch {
		case err != nil:
			ps.Add(key, "%v", err)
		case v != strings.TrimSpace(v):
			// Only an inline token gets here: token_file and token_env are
			// trimmed. The token of an Authorization header is trimmed too,
			// so this one could never match; it is refused, not trimmed, so
			// that the secret is what the file says.
			ps.Add(key+".token", "has white space around it: the token of an Authorization header is trimmed, so it could never match; remove the white space")
		case len(v) < MinTokenLength:
			ps.Add(key, "token shorter than %d characters (make one with `openssl rand -hex 32`)", MinTokenLength)
		default:
			d := auth.DigestOf(v)
			if prev, ok := digests[d]; ok {
				ps.Add(key, "same token as %s", prev)
			}
			digests[d] = key
		}
	}
	for i, u := range c.Users {
		key := fmt.Sprintf("auth.users[%d]", i)
		seen(key, u.Name)
		if u.Name != strings.TrimSpace(u.Name) {
			ps.Add(key+".name", "has white space around it (%q): a sign-in's name is compared as given, so %q would be refused; remove the white space", u.Name, strings.TrimSpace(u.Name))
		}
		role(key, u.Role)
		if u.PasswordHash == "" {
			ps.Add(key+".password_hash", "is empty (make one with `host ctl users hash-password`)")
		} else if err := auth.CheckPasswordHash(u.PasswordHash); err != nil {
			ps.Add(key+".password_hash", "%v", err)
		}
	}
	for _, f := range []struct {
		key string
		v   time.Duration
	}{{"auth.session_ttl", c.SessionTTL}, {"auth.failed_window", c.FailedWindow}} {
		if f.v < 0 {
			ps.Add(f.key, "must not be negative (got %s)", f.v)
		}
	}
	if c.MaxSessions < 0 {
		ps.Add("auth.max_sessions", "must not be negative (got %d)", c.MaxSessions)
	}
	if c.FailedAttempts < 0 {
		ps.Add("auth.failed_attempts", "must not be negative (got %d)", c.FailedAttempts)
	}
	if c.Demo && listen != "" && !Loopback(listen) {
		ps.Add("auth.demo", "the demo user is for a loopback admin.listen only (got %s)", listen)
	}
	for _, n := range []string{DemoUser, DemoToken} {
		if _, taken := names[n]; c.Demo && taken {
			ps.Add("auth.demo", "%q is also the name of %s", n, names[n])
		}
	}
	if (c.Mode == "" || c.Mode == AuthAuto) && !c.HasCredentials() && listen != "" && !Loopback(listen) {
		// Keyed at admin.listen: the address is what opens the server (the
		// default is loopback), so the problem names the file, variable or
		// flag that set it; admin.auth, left at its defaults, has none.
		ps.Add("listen", "%s is not a loopback address and admin.auth has no credentials configured: the admin server would be open to the network; configure admin.auth.tokens or admin.auth.users, or set admin.auth.mode: none to run it open on purpose", listen)
	}
	return ps
}

// Loopback reports whether the host of addr (host:port) is a loopback
// address: 127.0.0.0/8, ::1 or "localhost". An empty host (every
// interface) is not.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
