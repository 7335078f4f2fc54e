package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// TestSignInsAtOnceKeepTheLimit: sign-ins from one address that arrive
// together, while the password checks are busy, get no more checks than
// the address's allowance (auth.failed_attempts): the others are refused
// with 429 at once, not checked after the ones before them failed.
func TestSignInsAtOnceKeepTheLimit(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("alicealice"), bcrypt.MinCost)
	require.NoError(t, err)
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Auth.Users = []UserConfig{{Name: "alice", Role: RoleOperator, PasswordHash: string(hash)}}
	cfg.Auth.FailedAttempts = 3
	cfg.Auth.FailedWindow = 1 << 40 // no refill during the test
	s, err := NewServer(cfg, nil, StatusInfo{}, nil, nil, nil)
	require.NoError(t, err)
	h := s.Handler()

	// Every password-check slot is busy: the sign-ins wait for one.
	for range cap(s.auth.checks) {
		s.auth.checks <- struct{}{}
	}
	free := sync.OnceFunc(func() {
		for range cap(s.auth.checks) {
			<-s.auth.checks
		}
	})
	t.Cleanup(free)
	const tries = 12
	codes := make(chan int, tries)
	for range tries {
		go func() {
			req := httptest.NewRequest(http.MethodPost, SessionPath, strings.NewReader(`{"name":"alice","password":"a-guess"}`))
			req.RemoteAddr = "192.0.2.7:1000"
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			codes <- rec.Code
		}()
	}
	// Those beyond the allowance are answered while the checks are busy.
	deadline := time.After(10 * time.Second)
	for range tries - cfg.Auth.FailedAttempts {
		select {
		case c := <-codes:
			require.Equal(t, http.StatusTooManyRequests, c)
		case <-deadline:
			free()
			t.Fatalf("more than %d sign-ins from one address wait for a password check", cfg.Auth.FailedAttempts)
		}
	}
	free()
	for range cfg.Auth.FailedAttempts {
		require.Equal(t, http.StatusUnauthorized, <-codes, "checked, and wrong")
	}

	// A right password gives back the failure counted ahead of its check.
	for range 2 * cfg.Auth.FailedAttempts {
		req := httptest.NewRequest(http.MethodPost, SessionPath, strings.NewReader(`{"name":"alice","password":"alicealice"}`))
		req.RemoteAddr = "192.0.2.8:1000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	}
}

// TestSignInLimitCannotBeSidestepped: the limit holds whatever a client
// varies. An X-Forwarded-For header is not trusted (no proxy is
// configured: the connection's address counts); another port of the same
// address, and another address of the same IPv6 /64 (which one host
// holds: 2^64 addresses for the taking), share one allowance; varying the
// name's case or the name itself changes nothing. Another IPv4 address,
// and another /64, have their own.
func TestSignInLimitCannotBeSidestepped(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	h, err := bcrypt.GenerateFromPassword([]byte("alicealice"), bcrypt.MinCost)
	require.NoError(t, err)
	cfg.Auth.Users = []UserConfig{{Name: "alice", Role: RoleOperator, PasswordHash: string(h)}}
	cfg.Auth.FailedAttempts = 2
	cfg.Auth.FailedWindow = 1 << 40 // no refill during the test
	s, err := NewServer(cfg, nil, StatusInfo{}, nil, nil, nil)
	require.NoError(t, err)
	try := func(remote, name string, hdr map[string]string) int {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, SessionPath, strings.NewReader(`{"name":"`+name+`","password":"wrong-password"}`))
		req.RemoteAddr = remote
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	for _, c := range []struct {
		name          string
		first, second string // the two failures the allowance has
		then          string // refused: the same client
		other         string // another client: its own allowance
	}{
		{"ipv4 ports", "192.0.2.7:1000", "192.0.2.7:1001", "192.0.2.7:1002", "192.0.2.8:1000"},
		{"ipv6 /64", "[2001:db8:1:2::1]:1000", "[2001:db8:1:2::2]:1000", "[2001:db8:1:2:ffff:ffff:ffff:ffff]:1000", "[2001:db8:1:3::1]:1000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, http.StatusUnauthorized, try(c.first, "alice", map[string]string{"X-Forwarded-For": "198.51.100.1"}))
			require.Equal(t, http.StatusUnauthorized, try(c.second, "ALICE", map[string]string{"X-Forwarded-For": "198.51.100.2", "X-Real-IP": "198.51.100.3"}))
			require.Equal(t, http.StatusTooManyRequests, try(c.then, "Alice", map[string]string{"X-Forwarded-For": "198.51.100.4"}))
			require.Equal(t, http.StatusTooManyRequests, try(c.then, "bob", map[string]string{"Forwarded": "for=198.51.100.5"}))
			require.Equal(t, http.StatusUnauthorized, try(c.other, "alice", nil))
		})
	}
}
