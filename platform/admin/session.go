package admin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"mime"
	"net/http"
	"sync"
	"time"
)

// SessionCookie is the name of the session cookie.
const SessionCookie = "plba_session"

// CSRFHeader carries a session's CSRF token on every state-changing
// request made with the session cookie.
const CSRFHeader = "X-CSRF-Token"

// CSRFField carries the token instead of CSRFHeader in a form posted as
// a browser posts it without scripts (application/x-www-form-urlencoded):
// the web UI's action forms have it.
const CSRFField = "csrf"

// MaxFormBody bounds a form the admin server or its web UI reads (for its
// CSRFField, or an action's fields).
const MaxFormBody = 256 << 10

// formPost reports whether r is a form as a browser posts it.
func formPost(r *http.Request) bool {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return r.Method == http.MethodPost && ct == "application/x-www-form-urlencoded"
}

// csrfOf returns the CSRF token r carries: its CSRFHeader, or else, for
// a form (formPost), its field CSRFField. Reading the field parses the
// form (at most MaxFormBody), which the handler then finds parsed.
func csrfOf(r *http.Request) string {
	if v := r.Header.Get(CSRFHeader); v != "" || !formPost(r) {
		return v
	}
	if r.PostForm == nil {
		r.Body = http.MaxBytesReader(nil, r.Body, MaxFormBody)
		if err := r.ParseForm(); err != nil {
			return ""
		}
	}
	return r.PostForm.Get(CSRFField)
}

// session is one signed-in user.
type session struct {
	id      string
	csrf    string
	user    string
	role    Role
	expires time.Time
}

// sessions are the signed-in users, in memory (a restart signs everyone
// out), at most max of them.
type sessions struct {
	ttl time.Duration
	max int

	mu   sync.Mutex
	byID map[string]*session
}

func newSessions(ttl time.Duration, max int) *sessions {
	return &sessions{ttl: ttl, max: max, byID: make(map[string]*session)}
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create signs user in with role.
func (s *sessions) create(user string, role Role, now time.Time) *session {
	se := &session{id: randomToken(), csrf: randomToken(), user: user, role: role, expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, o := range s.byID {
		if !now.Before(o.expires) {
			delete(s.byID, id)
		}
	}
	for len(s.byID) >= s.max {
		delete(s.byID, s.victim().id)
	}
	s.byID[se.id] = se
	return se
}

// victim is the session a full table gives up: of the user holding the
// most sessions, the one closest to its expiry (among users holding as
// many, the closest of all of theirs). A user signing in again and again
// so ends their own sessions, not everyone else's. s.mu held, the table
// not empty.
func (s *sessions) victim() *session {
	held := make(map[string]int, len(s.byID))
	for _, o := range s.byID {
		held[o.user]++
	}
	var v *session
	for _, o := range s.byID {
		switch {
		case v == nil, held[o.user] > held[v.user]:
			v = o
		case held[o.user] == held[v.user] && o.expires.Before(v.expires):
			v = o
		}
	}
	return v
}

// get returns the live session id names.
func (s *sessions) get(id string, now time.Time) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.byID[id]
	if !ok {
		return nil, false
	}
	if !now.Before(se.expires) {
		delete(s.byID, id)
		return nil, false
	}
	return se, true
}

// end signs the session out.
func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
}

// csrfOK reports whether got is the session's CSRF token.
func (se *session) csrfOK(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(se.csrf)) == 1
}
