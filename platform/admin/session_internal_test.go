package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// TestSessionExpiresAndIsBounded: a session ends at its TTL (401 after,
// on a clock the test moves), and past max_sessions a sign-in ends the
// session closest to its expiry.
func TestSessionExpiresAndIsBounded(t *testing.T) {
	t.Parallel()
	h, err := bcrypt.GenerateFromPassword([]byte("alicealice"), bcrypt.MinCost)
	require.NoError(t, err)
	cfg := Config{Listen: "127.0.0.1:0", Auth: AuthConfig{SessionTTL: time.Hour, MaxSessions: 2,
		Users: []UserConfig{{Name: "alice", Role: RoleViewer, PasswordHash: string(h)}}}}
	s, err := NewServer(cfg, nil, StatusInfo{}, nil, nil, nil)
	require.NoError(t, err)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.auth.now = func() time.Time { return now }

	signIn := func() *http.Cookie {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, SessionPath, strings.NewReader(`{"name":"alice","password":"alicealice"}`))
		s.Handler().ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		return rec.Result().Cookies()[0]
	}
	status := func(c *http.Cookie) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/admin/v1/status", nil)
		req.AddCookie(c)
		s.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	first := signIn()
	now = now.Add(time.Minute)
	second := signIn()
	require.Equal(t, http.StatusOK, status(first))
	now = now.Add(time.Minute)
	third := signIn() // max 2: the first (closest to expiry) ends
	require.Equal(t, http.StatusUnauthorized, status(first))
	require.Equal(t, http.StatusOK, status(second))
	require.Equal(t, http.StatusOK, status(third))

	now = now.Add(time.Hour - time.Minute) // the second's hour is over, the third's not
	require.Equal(t, http.StatusUnauthorized, status(second))
	require.Equal(t, http.StatusOK, status(third))
	now = now.Add(time.Minute)
	require.Equal(t, http.StatusUnauthorized, status(third))
}

// TestFailLimiterRefills: after the window the address may try again,
// one failure per window/attempts.
func TestFailLimiterRefills(t *testing.T) {
	t.Parallel()
	l := newFailLimiter(3, time.Minute)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 3 {
		_, blocked := l.blocked("192.0.2.1:5", now)
		require.False(t, blocked)
		l.fail("192.0.2.1:5", now)
	}
	wait, blocked := l.blocked("192.0.2.1:6", now) // another port, same address
	require.True(t, blocked)
	require.InDelta(t, 20*time.Second, wait, float64(time.Second))
	_, blocked = l.blocked("192.0.2.1:6", now.Add(20*time.Second))
	require.False(t, blocked)
	_, blocked = l.blocked("192.0.2.2:6", now)
	require.False(t, blocked)
}

// TestPasswordChecksAreBounded: with every password-check slot taken, a
// sign-in waits for one (here: until its client gives up, and nothing is
// checked or created); with a slot free it goes through.
func TestPasswordChecksAreBounded(t *testing.T) {
	t.Parallel()
	h, err := bcrypt.GenerateFromPassword([]byte("alicealice"), bcrypt.MinCost)
	require.NoError(t, err)
	cfg := Config{Listen: "127.0.0.1:0", Auth: AuthConfig{Users: []UserConfig{{Name: "alice", Role: RoleViewer, PasswordHash: string(h)}}}}
	s, err := NewServer(cfg, nil, StatusInfo{}, nil, nil, nil)
	require.NoError(t, err)
	for range cap(s.auth.checks) {
		s.auth.checks <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client gave up while waiting
	rec := httptest.NewRecorder()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, SessionPath, strings.NewReader(`{"name":"alice","password":"alicealice"}`))
	s.Handler().ServeHTTP(rec, req)
	require.Empty(t, rec.Result().Cookies())
	require.Empty(t, s.auth.sessions.byID)

	<-s.auth.checks // one slot free
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, SessionPath, strings.NewReader(`{"name":"alice","password":"alicealice"}`)))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Len(t, s.auth.sessions.byID, 1)
}

// TestSignInsOfOneUserDoNotEndOthersSessions: the sessions are bounded
// (auth.max_sessions), and a user who signs in again and again (any user:
// a viewer, whose sign-ins the rate limit does not count, as they do not
// fail) ends their own sessions past the bound, not everyone else's: a
// full table gives up a session of the user holding the most.
func TestSignInsOfOneUserDoNotEndOthersSessions(t *testing.T) {
	t.Parallel()
	h, err := bcrypt.GenerateFromPassword([]byte("password1"), bcrypt.MinCost)
	require.NoError(t, err)
	cfg := Config{Listen: "127.0.0.1:0", Auth: AuthConfig{SessionTTL: time.Hour, MaxSessions: 3, Users: []UserConfig{
		{Name: "alice", Role: RoleOperator, PasswordHash: string(h)},
		{Name: "bob", Role: RoleOperator, PasswordHash: string(h)},
		{Name: "mallory", Role: RoleViewer, PasswordHash: string(h)}}}}
	s, err := NewServer(cfg, nil, StatusInfo{}, nil, nil, nil)
	require.NoError(t, err)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.auth.now = func() time.Time { return now }
	signIn := func(name string) *http.Cookie {
		now = now.Add(time.Second)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, SessionPath, strings.NewReader(`{"name":"`+name+`","password":"password1"}`))
		s.Handler().ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		return rec.Result().Cookies()[0]
	}
	live := func(c *http.Cookie) bool {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, StatusPath, nil)
		req.AddCookie(c)
		s.Handler().ServeHTTP(rec, req)
		return rec.Code == http.StatusOK
	}
	alice := signIn("alice")
	var mallory []*http.Cookie
	for range 10 {
		mallory = append(mallory, signIn("mallory"))
	}
	require.True(t, live(alice), "mallory's sign-ins ended alice's session")
	require.True(t, live(mallory[9]))
	require.True(t, live(mallory[8]))
	require.False(t, live(mallory[7]), "the table holds 3: alice's and mallory's newest two")
	bob := signIn("bob") // full: one of mallory's (the user holding the most) ends
	require.True(t, live(alice))
	require.True(t, live(bob))
	require.True(t, live(mallory[9]))
	require.False(t, live(mallory[8]))
}
