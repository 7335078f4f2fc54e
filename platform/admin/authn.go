package admin

import (
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/plba/plba/platform/admin/auth"
)

// Anonymous is the identity of every request when authentication is off.
var Anonymous = Identity{Name: "anonymous", Role: RoleAdmin, Kind: "none"}

// realm is the WWW-Authenticate challenge of a 401.
const realm = `Bearer realm="plba admin"`

// authenticator decides who a request is and whether it may call a route.
type authenticator struct {
	off       bool
	localOnly bool // off for want of credentials on loopback: only requests for a loopback name are answered
	tokens    []tokenCred
	users     map[string]UserConfig
	decoy     *auth.Decoy // unknown users' passwords are checked against it: same time as a known user's
	sessions  *sessions
	limit     *failLimiter
	checks    chan struct{} // one slot per password check allowed at once
	secure    bool          // cookies only over TLS
	demoPass  string        // the demo user's password (admin.auth.demo), for the start-up log
	demoToken string        // the demo token (admin.auth.demo), for the start-up log
	log       *zap.Logger
	now       func() time.Time
}

type tokenCred struct {
	name   string
	role   Role
	digest auth.Digest
}

// newAuthenticator builds the authenticator of c (validated, defaults
// applied). It reads token_env variables; it opens nothing.
func newAuthenticator(c Config, log *zap.Logger) (*authenticator, error) {
	ac := c.Auth
	a := &authenticator{
		users:    make(map[string]UserConfig, len(ac.Users)),
		sessions: newSessions(ac.SessionTTL, ac.MaxSessions),
		limit:    newFailLimiter(ac.FailedAttempts, ac.FailedWindow),
		checks:   make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		secure:   c.TLS.Enabled() || ac.SecureCookies,
		log:      log,
		now:      time.Now,
	}
	a.off = ac.Mode == AuthNone || !ac.HasCredentials()
	a.localOnly = a.off && ac.Mode != AuthNone
	for i, t := range ac.Tokens {
		v, err := t.tokenValue()
		if err != nil {
			return nil, fmt.Errorf("auth.tokens[%d]: %w", i, err)
		}
		a.tokens = append(a.tokens, tokenCred{name: t.Name, role: t.Role, digest: auth.DigestOf(v)})
	}
	if ac.Demo {
		// 16 random base32 characters (80 bits) are too many to guess at
		// any bcrypt cost: the lowest keeps the start fast.
		pw := rand.Text()[:16]
		hb, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("auth.demo: %w", err)
		}
		h := string(hb)
		a.users[DemoUser] = UserConfig{Name: DemoUser, Role: RoleOperator, PasswordHash: h}
		a.decoy, a.demoPass = auth.NewDecoy(h), pw
		a.demoToken = rand.Text()
		a.tokens = append(a.tokens, tokenCred{name: DemoToken, role: RoleOperator, digest: auth.DigestOf(a.demoToken)})
	}
	for i, u := range ac.Users {
		a.users[u.Name] = u
		if i == 0 { // the configured users' cost, not the demo's lowest: a refusal's time tells no name
			a.decoy = auth.NewDecoy(u.PasswordHash)
		}
	}
	return a, nil
}

// denial is what authenticate decided, when it did not let the
// request through.
type denial struct {
	code   int
	msg    string
	audit  bool   // a state-changing call so refused is audited (a known identity, or a failure the limit counts)
	reason string // the audit's Error, when audit
	header func(http.Header)
}

// unknownToken is the identity the audit gives a call made with an
// unknown bearer token.
var unknownToken = Identity{Name: "?", Kind: "token"}

// authenticate returns the identity of r and, for a session, the session,
// when it may call a route that needs need; otherwise the denial to answer
// with.
func (a *authenticator) authenticate(r *http.Request, need Role) (Identity, *session, *denial) {
	if a.off {
		return Anonymous, nil, nil
	}
	if need == RolePublic {
		return Identity{}, nil, nil
	}
	now := a.now()
	var id Identity
	var se *session
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return id, nil, unauthorized(`Bearer realm="plba admin", error="invalid_request"`, "admin: Authorization must be \"Bearer <token>\"")
		}
		if d := a.blocked(r, now); d != nil {
			// The first refusal of a rate-limited address is audited (a
			// state-changing call's), the next ones logged only, until the
			// address fails again: as for sign-ins.
			if stateChanging(r.Method) && a.limit.firstRefusal(r.RemoteAddr) {
				d.audit, d.reason = true, reasonRateLimited
			}
			return unknownToken, nil, d
		}
		got := auth.DigestOf(strings.TrimSpace(tok))
		found := -1
		for i, t := range a.tokens { // every one, no early exit: the time says nothing
			if t.digest.Equal(got) {
				found = i
			}
		}
		if found < 0 {
			d := unauthorized(`Bearer realm="plba admin", error="invalid_token"`, "admin: unknown bearer token")
			d.audit, d.reason = true, "unknown bearer token" // each one counted by the limit: the audit stays bounded
			if a.failed(r, now, "bearer token", "") {
				d.reason += reasonNowLimited
			}
			return unknownToken, nil, d
		}
		id = Identity{Name: a.tokens[found].name, Role: a.tokens[found].role, Kind: "token"}
	} else if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		s, ok := a.sessions.get(c.Value, now)
		if !ok {
			return id, nil, unauthorized(realm, "admin: session expired or signed out; sign in again at POST "+SessionPath)
		}
		se = s
		id = Identity{Name: s.user, Role: s.role, Kind: "session"}
		if stateChanging(r.Method) && !s.csrfOK(csrfOf(r)) {
			return id, se, &denial{code: http.StatusForbidden, audit: true, reason: "no or wrong CSRF token",
				msg: "admin: a state-changing request with a session needs its CSRF token in the " + CSRFHeader +
					" header (or, for a form, in its field " + CSRFField + ")"}
		}
	} else {
		return id, nil, unauthorized(realm, "admin: credentials required: a bearer token or a session (POST "+SessionPath+")")
	}
	if !id.Role.Allows(need) {
		return id, se, &denial{code: http.StatusForbidden, audit: true, reason: fmt.Sprintf("role %s; this needs %s", id.Role, need),
			msg: fmt.Sprintf("admin: %s %q has role %s; this needs %s", id.Kind, id.Name, id.Role, need)}
	}
	return id, se, nil
}

func unauthorized(challenge, msg string) *denial {
	return &denial{code: http.StatusUnauthorized, msg: msg, header: func(h http.Header) { h.Set("WWW-Authenticate", challenge) }}
}

// blocked returns a 429 when r's address has no failure left.
func (a *authenticator) blocked(r *http.Request, now time.Time) *denial {
	wait, ok := a.limit.blocked(r.RemoteAddr, now)
	if !ok {
		return nil
	}
	return tooMany(wait)
}

// attempt counts a failure of r's address ahead of a password check
// (failLimiter.take), or returns a 429 when it has none left; undo gives
// the failure back when the password was right.
func (a *authenticator) attempt(r *http.Request, now time.Time) (undo func(), d *denial) {
	undo, wait, ok := a.limit.take(r.RemoteAddr, now)
	if !ok {
		return nil, tooMany(wait)
	}
	return undo, nil
}

// tooMany is the 429 of an address with no failure left for wait.
func tooMany(wait time.Duration) *denial {
	secs := strconv.Itoa(int(math.Ceil(wait.Seconds())))
	return &denial{code: http.StatusTooManyRequests, msg: "admin: too many failed sign-ins or tokens from this address; retry in " + secs + "s",
		header: func(h http.Header) { h.Set("Retry-After", secs) }}
}

// failed counts a failed credential of r's address and logs it, with
// name (auditName's, for a sign-in) when not empty. It reports whether
// the address is rate-limited now.
func (a *authenticator) failed(r *http.Request, now time.Time, what, name string) bool {
	a.limit.fail(r.RemoteAddr, now)
	return a.logFailed(r, now, what, name)
}

// logFailed logs a failed credential of r's address, already counted
// (failed, attempt), and reports whether the address is rate-limited
// now.
func (a *authenticator) logFailed(r *http.Request, now time.Time, what, name string) bool {
	fields := []zap.Field{zap.String("remote", r.RemoteAddr), zap.String("path", r.URL.Path)}
	if name != "" {
		fields = append(fields, zap.String("name", name))
	}
	_, limited := a.limit.blocked(r.RemoteAddr, now)
	if limited {
		fields = append(fields, zap.Bool("limited", true))
	}
	a.log.Warn("admin: refused "+what, fields...)
	return limited
}

// write answers r with d.
// write answers the denial: as JSON, or as text to a browser's form
// (formPost), which shows the answer as it is.
func (d *denial) write(w http.ResponseWriter, r *http.Request) {
	if d.header != nil {
		d.header(w.Header())
	}
	if formPost(r) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(d.code)
		_, _ = fmt.Fprintf(w, "%s: %s\n", http.StatusText(d.code), d.msg)
		return
	}
	WriteJSON(w, d.code, Error{Error: d.msg})
}

// guard wraps a route's handler: authentication, the role check, the
// identity on the context, Cache-Control: no-store on the answer of a
// route that needs credentials, and the audit.
func (s *Server) guard(pattern string, need Role, h http.Handler) http.Handler {
	if need == "" {
		need = RoleViewer
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A browser sends a form of another site here with the user's
		// cookies, and with authentication off with nothing to tell it
		// from the UI's own: it says where it posts from (Sec-Fetch-Site,
		// Origin), and a state-changing request from elsewhere is refused.
		// Clients other than browsers send neither header.
		if stateChanging(r.Method) {
			if err := crossOrigin.Check(r); err != nil {
				skipAudit(r.Context())
				s.log.Info("admin: cross-origin request refused", zap.String("method", r.Method), zap.String("path", r.URL.Path),
					zap.String("origin", r.Header.Get("Origin")), zap.String("remote", r.RemoteAddr))
				WriteJSON(w, http.StatusForbidden, Error{Error: "admin: cross-origin request refused: a page of another site cannot act here"})
				return
			}
		}
		if need == RolePublic && !s.auth.off {
			publicCall(r.Context())
		}
		id, se, d := s.auth.authenticate(r, need)
		ctx := r.Context()
		if id.Name != "" {
			ctx = WithIdentity(ctx, id)
			if st, ok := ctx.Value(auditStateKey{}).(*auditState); ok {
				st.id = &id
			}
		}
		if d != nil {
			if d.audit && stateChanging(r.Method) {
				AuditContext(ctx, AuditEntry{Action: pattern, Target: r.URL.EscapedPath(), Result: AuditDenied, Error: d.reason})
			} else {
				skipAudit(ctx)
			}
			if d.code != http.StatusUnauthorized { // a failed token is logged by failed
				s.log.Info("admin: request refused", zap.Int("status", d.code), zap.String("method", r.Method),
					zap.String("path", r.URL.Path), zap.String("identity", id.Name), zap.String("remote", r.RemoteAddr))
			}
			d.write(w, r)
			return
		}
		if se != nil {
			ctx = context.WithValue(ctx, sessionKey{}, se)
		}
		if need != RolePublic {
			// What a route that needs credentials answers is kept by no
			// cache (a page seen with a session would stay in the browser
			// after its user signed out), unless its handler sets its own.
			w.Header().Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r.WithContext(ctx))
	})
	return audited(s.audit, pattern, inner)
}

type sessionKey struct{}

// localOnly wraps the listener's handler: with authentication off on
// loopback, a name of another site that its owner points at 127.0.0.1
// (DNS rebinding) makes its pages the same origin as the server's to the
// browser, and the Host header, a name other than a loopback one, is the
// only tell. Such a request is refused.
func (s *Server) localOnly(h http.Handler) http.Handler {
	if !s.auth.localOnly {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			s.log.Info("admin: request for another host refused", zap.String("method", r.Method), zap.String("path", r.URL.Path),
				zap.String("host", r.Host), zap.String("remote", r.RemoteAddr))
			WriteJSON(w, http.StatusForbidden, Error{Error: "admin: authentication is off: only requests for a loopback name (127.0.0.1, ::1, localhost) are answered; configure admin.auth to reach the server by another name"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether the Host header h names a loopback
// address or localhost.
func loopbackHost(h string) bool {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// userCosts returns the names of us by the bcrypt cost of their hash.
func userCosts(us []UserConfig) map[string][]string {
	costs := map[string][]string{}
	for _, u := range us {
		c, err := bcrypt.Cost([]byte(u.PasswordHash))
		if err != nil {
			continue // refused by validation
		}
		k := strconv.Itoa(c)
		costs[k] = append(costs[k], u.Name)
	}
	return costs
}

// crossOrigin tells a browser's cross-origin request (Sec-Fetch-Site, or
// Origin against Host) from a same-origin one and a non-browser client's.
var crossOrigin = http.NewCrossOriginProtection()

// logAuth says at start how the server authenticates: at warn when it
// does not.
func (s *Server) logAuth() {
	ac := s.cfg.Auth
	switch {
	case ac.Mode == AuthNone:
		s.log.Warn("admin: authentication is OFF (admin.auth.mode: none): every request acts as \"anonymous\" with role admin",
			zap.String("listen", s.cfg.Listen))
	case !ac.HasCredentials():
		s.log.Warn("admin: authentication is off: no credentials configured and the server listens on loopback only; configure admin.auth.tokens or admin.auth.users to turn it on",
			zap.String("listen", s.cfg.Listen))
	default:
		s.log.Info("admin: authentication on", zap.Int("tokens", len(ac.Tokens)), zap.Int("users", len(ac.Users)),
			zap.Duration("session_ttl", ac.SessionTTL), zap.Bool("secure_cookies", s.auth.secure))
		if costs := userCosts(ac.Users); len(costs) > 1 {
			s.log.Warn("admin: the users' password hashes have different bcrypt costs: the time a refused sign-in takes tells which names exist (an unknown name is checked at the first user's cost); hash every password at one cost (host ctl users hash-password)",
				zap.Any("users_by_cost", costs))
		}
	}
	if s.auth.demoPass != "" && s.ln != nil {
		scheme := "http://"
		if s.certs != nil {
			scheme = "https://"
		}
		s.log.Warn("admin: DEMO user and token, for the demo only (admin.auth.demo; new ones at every start, on loopback only): sign in to the web UI",
			zap.String("ui", scheme+s.ln.Addr().String()+"/ui/"), zap.String("name", DemoUser), zap.String("password", s.auth.demoPass),
			zap.String("role", string(RoleOperator)), zap.String("token", s.auth.demoToken),
			zap.String("ctl", "PLBA_CTL_TOKEN="+s.auth.demoToken+" host ctl --url "+scheme+s.ln.Addr().String()+" queues"))
	}
}
