package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/admin/auth"
)

// SessionPath is where users sign in (POST), see who they are (GET) and
// sign out (DELETE).
const SessionPath = "/admin/v1/session"

// SignIn is the body of POST SessionPath, as JSON or as a form
// (application/x-www-form-urlencoded, fields name and password).
type SignIn struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// SessionInfo is the answer of POST and GET SessionPath.
type SessionInfo struct {
	Identity
	// Expires is when the session ends (sessions only).
	Expires time.Time `json:"expires,omitzero"`
	// CSRFToken must accompany every state-changing request made with
	// the session cookie, in the X-CSRF-Token header (sessions only).
	CSRFToken string `json:"csrf_token,omitempty"`
}

// maxSignInBody bounds the body of POST SessionPath.
const maxSignInBody = 4 << 10

// maxAuditName bounds, in characters, the name a sign-in tried in the
// audit and the log.
const maxAuditName = 64

// The reasons a sign-in was refused, as the audit says them (the client
// is told "wrong name or password" either way: the answer says nothing
// of which names exist).
const (
	reasonUnknownUser   = "unknown user"
	reasonWrongPassword = "wrong password"
	reasonNowLimited    = "; the address is now rate-limited"
	reasonRateLimited   = "rate-limited: too many failed sign-ins or tokens from this address"
)

// auditName is the name a sign-in tried (the client's, anything at all)
// as the audit and the log show it: auditText's cleaning, cut to
// maxAuditName characters; "?" when nothing is left. A password typed in
// the name field is still the name: what the client sent as the password
// is never recorded.
func auditName(s string) string {
	if s = auditText(s, maxAuditName); s == "" {
		return "?"
	}
	return s
}

// sessionRoutes are the sign-in, who-am-I and sign-out routes.
func (s *Server) sessionRoutes() []Route {
	a := s.auth
	return []Route{
		{Pattern: "POST " + SessionPath, Role: RolePublic, Handler: http.HandlerFunc(a.signIn)},
		{Pattern: "GET " + SessionPath, Role: RoleViewer, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, _ := IdentityFrom(r.Context())
			info := SessionInfo{Identity: id}
			if se, ok := r.Context().Value(sessionKey{}).(*session); ok {
				info.Expires, info.CSRFToken = se.expires, se.csrf
			}
			WriteJSON(w, http.StatusOK, info)
		})},
		{Pattern: "DELETE " + SessionPath, Role: RolePublic, Handler: http.HandlerFunc(a.signOut)},
	}
}

func (a *authenticator) signIn(w http.ResponseWriter, r *http.Request) {
	if a.off {
		skipAudit(r.Context())
		WriteJSON(w, http.StatusConflict, Error{Error: "admin: authentication is off (no credentials configured, or admin.auth.mode none): there is nothing to sign in to"})
		return
	}
	// A sign-in from another site would sign the browser in as someone
	// else (login CSRF): the server's check of every state-changing
	// request (guard: Sec-Fetch-Site, or without it Origin against Host)
	// has refused it before this. Origin is not compared with Host again
	// here: behind a proxy that sends the server its own Host, the
	// browser's Origin names the proxy, and its Sec-Fetch-Site
	// same-origin is what counts.
	now := a.now()
	in, err := readSignIn(r)
	if err != nil {
		skipAudit(r.Context())
		WriteJSON(w, http.StatusBadRequest, Error{Error: err.Error()})
		return
	}
	name := auditName(in.Name)
	entry := AuditEntry{Action: "session.create", Identity: name, Auth: "session", Target: "user/" + name}
	undo, d := a.attempt(r, now)
	if d != nil {
		// The first refusal of a rate-limited address is audited, with
		// the name it tried; the next ones are logged only, until the
		// address fails again (anyone could flood the audit with them).
		if a.limit.firstRefusal(r.RemoteAddr) {
			entry.Result, entry.Error = AuditDenied, reasonRateLimited
			Audit(r, entry)
		} else {
			skipAudit(r.Context())
		}
		a.log.Info("admin: sign-in refused: the address is rate-limited", zap.String("remote", r.RemoteAddr), zap.String("name", name))
		d.write(w, r)
		return
	}
	// A password check costs a bcrypt computation (a quarter to most of a
	// second of a core): at most a few run at once, so that sign-ins from
	// many addresses cannot take every core from the host's work. The
	// check's failure is counted already (attempt): sign-ins from one
	// address that wait here together get no more checks than the
	// address's allowance.
	select {
	case a.checks <- struct{}{}:
	case <-r.Context().Done():
		undo() // never checked
		skipAudit(r.Context())
		return
	}
	u, known := a.users[in.Name]
	ok := false
	if known {
		ok = auth.CheckPassword(u.PasswordHash, in.Password)
	} else if a.decoy != nil {
		a.decoy.Check(in.Password)
	}
	<-a.checks
	if !ok {
		entry.Result, entry.Error = AuditDenied, reasonWrongPassword
		if !known {
			entry.Error = reasonUnknownUser
		}
		if a.logFailed(r, now, "sign-in", name) {
			entry.Error += reasonNowLimited
		}
		Audit(r, entry)
		w.Header().Set("WWW-Authenticate", realm)
		WriteJSON(w, http.StatusUnauthorized, Error{Error: "admin: wrong name or password"})
		return
	}
	undo() // a right password is no failure
	se := a.sessions.create(u.Name, u.Role, now)
	entry.Identity, entry.Target, entry.Role = u.Name, "user/"+u.Name, u.Role
	Audit(r, entry)
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: se.id, Path: "/", Expires: se.expires, MaxAge: int(se.expires.Sub(now).Seconds()),
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode,
	})
	WriteJSON(w, http.StatusOK, SessionInfo{Identity: Identity{Name: u.Name, Role: u.Role, Kind: "session"}, Expires: se.expires, CSRFToken: se.csrf})
}

// signOut ends the cookie's session. With a live session it needs the
// session's CSRF token; without one it only clears the cookie.
func (a *authenticator) signOut(w http.ResponseWriter, r *http.Request) {
	clear := &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode}
	c, err := r.Cookie(SessionCookie)
	var se *session
	if err == nil {
		se, _ = a.sessions.get(c.Value, a.now())
	}
	if se == nil {
		skipAudit(r.Context())
		http.SetCookie(w, clear)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	entry := AuditEntry{Action: "session.delete", Identity: se.user, Role: se.role, Auth: "session", Target: "user/" + se.user}
	if !se.csrfOK(r.Header.Get(CSRFHeader)) {
		entry.Error = "no or wrong CSRF token"
		Audit(r, entry)
		WriteJSON(w, http.StatusForbidden, Error{Error: "admin: signing out needs the session's CSRF token in the " + CSRFHeader + " header"})
		return
	}
	a.sessions.end(se.id)
	Audit(r, entry)
	http.SetCookie(w, clear)
	w.WriteHeader(http.StatusNoContent)
}

// readSignIn reads a SignIn from a JSON or form body.
func readSignIn(r *http.Request) (SignIn, error) {
	var in SignIn
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSignInBody+1))
	if err != nil {
		return in, fmt.Errorf("admin: sign in: read body: %w", err)
	}
	if len(body) > maxSignInBody {
		return in, fmt.Errorf("admin: sign in: body larger than %d bytes", maxSignInBody)
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return in, fmt.Errorf("admin: sign in: form: %w", err)
		}
		in = SignIn{Name: v.Get("name"), Password: v.Get("password")}
	case "application/json", "":
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return in, fmt.Errorf(`admin: sign in: body must be {"name": "...", "password": "..."}: %w`, err)
		}
	default:
		return in, fmt.Errorf("admin: sign in: Content-Type %q: want application/json or application/x-www-form-urlencoded", mt)
	}
	if in.Name == "" || in.Password == "" {
		return in, fmt.Errorf("admin: sign in: name and password are required")
	}
	return in, nil
}
