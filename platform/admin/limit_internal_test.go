package admin

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fresh is the i-th of the /64s of the IPv6 /48 2001:db8:1::/48 (65,536
// of them, each its own address for the limit), as a remote address.
func fresh(i int) string {
	return fmt.Sprintf("[2001:db8:1:%x::1]:4000", i)
}

// TestFailLimiterFloodKeepsLimits: an address over its limit stays over
// it when as many fresh addresses as the limiter remembers fail once
// each (one /48 holds 65,536 /64s): the flood does not make it forget
// the limited address, and the limited address gets no failure more.
func TestFailLimiterFloodKeepsLimits(t *testing.T) {
	t.Parallel()
	l := newFailLimiter(3, time.Minute)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const target = "203.0.113.9:4000"
	for range 3 {
		_, _, ok := l.take(target, now)
		require.True(t, ok)
	}
	_, blocked := l.blocked(target, now)
	require.True(t, blocked)

	for i := range maxLimitedAddrs + 10 {
		l.fail(fresh(i), now)
		require.LessOrEqual(t, len(l.addrs), maxLimitedAddrs)
	}
	wait, blocked := l.blocked(target, now)
	require.True(t, blocked, "the flood made the limiter forget a limited address")
	require.InDelta(t, 20*time.Second, wait, float64(time.Second))
	_, _, ok := l.take(target, now)
	require.False(t, ok)
	_, _, ok = l.take(target, now.Add(10*time.Second))
	require.False(t, ok)
	_, _, ok = l.take(target, now.Add(20*time.Second))
	require.True(t, ok, "its limit refills as before")
}

// TestFailLimiterOverflowIsShared: when the table is full of addresses
// still limited, the fresh addresses beyond it share one limit (the same
// allowance as one address), whose first refusal is reported once until
// it counts a failure again; a failure given back (undo) is given back
// to it. The table stays at its bound.
func TestFailLimiterOverflowIsShared(t *testing.T) {
	t.Parallel()
	l := newFailLimiter(3, time.Minute)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxLimitedAddrs {
		for range 3 {
			l.fail(fresh(i), now) // full again in a minute
		}
	}
	require.Len(t, l.addrs, maxLimitedAddrs)

	const next = maxLimitedAddrs
	undo, _, ok := l.take(fresh(next), now)
	require.True(t, ok)
	undo() // right credentials: given back
	for i := range 3 {
		_, blocked := l.blocked(fresh(next+10+i), now)
		require.False(t, blocked)
		_, _, ok := l.take(fresh(next+i), now)
		require.True(t, ok, "fresh address %d", i)
	}
	// A fourth fresh address, never seen, is over the shared limit.
	wait, blocked := l.blocked(fresh(next+3), now)
	require.True(t, blocked, "fresh addresses beyond the bound are limited together")
	require.InDelta(t, 20*time.Second, wait, float64(time.Second))
	_, wait, ok = l.take(fresh(next+3), now)
	require.False(t, ok)
	require.InDelta(t, 20*time.Second, wait, float64(time.Second))
	require.True(t, l.firstRefusal(fresh(next+3)), "the overflow's first refusal is reported")
	require.False(t, l.firstRefusal(fresh(next+4)), "then no more, from any fresh address")
	require.Len(t, l.addrs, maxLimitedAddrs)

	// 20 s on, no address of the table has refilled: the overflow has one
	// failure more, counted, and its next refusal is reported again.
	now = now.Add(20 * time.Second)
	_, _, ok = l.take(fresh(next+5), now)
	require.True(t, ok)
	_, _, ok = l.take(fresh(next+6), now)
	require.False(t, ok)
	require.True(t, l.firstRefusal(fresh(next+6)))
	require.False(t, l.firstRefusal(fresh(next+6)))
	require.Len(t, l.addrs, maxLimitedAddrs)
	_, blocked = l.blocked(fresh(0), now)
	require.False(t, blocked, "an address of the table has its own limit, refilled by one")
}

// TestFailLimiterPrunesRefilled: once addresses of a full table have
// refilled, they are forgotten, and fresh addresses get a limit of their
// own again; an address still limited is kept.
func TestFailLimiterPrunesRefilled(t *testing.T) {
	t.Parallel()
	l := newFailLimiter(3, time.Minute)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const target = "203.0.113.9:4000"
	for i := range maxLimitedAddrs - 1 {
		l.fail(fresh(i), t0) // full again at t0+20s
	}
	for range 3 {
		l.fail(target, t0.Add(15*time.Second)) // full again at t0+75s
	}
	require.Len(t, l.addrs, maxLimitedAddrs)
	for i := range 4 {
		l.fail(fresh(maxLimitedAddrs+i), t0.Add(15*time.Second)) // the overflow
	}
	_, _, ok := l.take(fresh(maxLimitedAddrs+4), t0.Add(15*time.Second))
	require.False(t, ok, "the table is full: the overflow")

	now := t0.Add(30 * time.Second)
	for _, a := range []string{fresh(maxLimitedAddrs + 4), fresh(maxLimitedAddrs + 5)} {
		for range 3 {
			_, _, ok := l.take(a, now)
			require.True(t, ok, "a fresh address has its own limit again")
		}
		_, _, ok := l.take(a, now)
		require.False(t, ok)
	}
	_, blocked := l.blocked(target, now)
	require.True(t, blocked, "an address still limited is kept")
	require.Len(t, l.addrs, 3, "the addresses that refilled are forgotten")
}

// TestFailLimiterTableIsBounded: fresh addresses failing, taking and
// being looked at, over time, never make the table outgrow its bound.
func TestFailLimiterTableIsBounded(t *testing.T) {
	t.Parallel()
	l := newFailLimiter(5, time.Minute)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 4 * maxLimitedAddrs {
		if i%1000 == 0 {
			now = now.Add(time.Second)
		}
		switch i % 3 {
		case 0:
			l.fail(fresh(i), now)
		case 1:
			if undo, _, ok := l.take(fresh(i), now); ok && i%2 == 0 {
				undo()
			}
		default:
			l.blocked(fresh(i), now)
		}
		if len(l.addrs) > maxLimitedAddrs {
			t.Fatalf("%d addresses remembered after %d fresh ones; the bound is %d", len(l.addrs), i+1, maxLimitedAddrs)
		}
	}
}

// TestBearerFloodKeepsLimit: an address refused for its failed bearer
// tokens is still refused, with the right token, after as many fresh
// addresses as the limiter remembers have failed once each.
func TestBearerFloodKeepsLimit(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Auth.Tokens = []TokenConfig{{Name: "ci", Role: RoleViewer, Token: "the-right-token-0123456789"}}
	cfg.Auth.FailedAttempts = 2
	cfg.Auth.FailedWindow = time.Minute
	s, err := NewServer(cfg, nil, StatusInfo{}, nil, nil, nil)
	require.NoError(t, err)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.auth.now = func() time.Time { return now }
	h := s.Handler()
	bearer := func(remote, tok string) int {
		req := httptest.NewRequest(http.MethodGet, "/admin/v1/status", nil)
		req.RemoteAddr = remote
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	const target = "203.0.113.9:4000"
	require.Equal(t, http.StatusUnauthorized, bearer(target, "a-wrong-token-000000000"))
	require.Equal(t, http.StatusUnauthorized, bearer(target, "a-wrong-token-000000001"))
	require.Equal(t, http.StatusTooManyRequests, bearer(target, "the-right-token-0123456789"))
	for i := range maxLimitedAddrs {
		bearer(fresh(i), "a-wrong-token-000000000")
	}
	require.Equal(t, http.StatusTooManyRequests, bearer(target, "a-wrong-token-000000002"),
		"the flood lifted the address's limit")
	require.Equal(t, http.StatusTooManyRequests, bearer(target, "the-right-token-0123456789"))
	now = now.Add(30 * time.Second)
	require.Equal(t, http.StatusOK, bearer(target, "the-right-token-0123456789"), "its limit refills as before")
}
