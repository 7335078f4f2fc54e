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
