package admin

import (
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failLimiter limits failed sign-ins and failed bearer tokens per remote
// address (the connection's IP, port left out; an IPv6 address's /64,
// which one host holds whole): Burst failures at once,
// then one per Every. An address over its limit is refused with 429
// before its credentials are even checked.
type failLimiter struct {
	every rate.Limit
	burst int

	mu    sync.Mutex
	addrs map[string]*addrLimit
}

type addrLimit struct {
	lim     *rate.Limiter
	refused bool // a refusal since the last failure was reported (firstRefusal)
}

// maxLimitedAddrs bounds the addresses remembered; past it the ones whose
// limiter has filled up again are forgotten.
const maxLimitedAddrs = 10_000

func newFailLimiter(attempts int, window time.Duration) *failLimiter {
	return &failLimiter{
		every: rate.Every(window / time.Duration(attempts)),
		burst: attempts,
		addrs: make(map[string]*addrLimit),
	}
}

// host is the key of remote's limit (remote is host:port, as in
// http.Request.RemoteAddr): its IPv4 address, or its IPv6 address's /64
// (a host is given a /64, and every address in it, to pick from at will:
// one limit per address would be no limit).
func host(remote string) string {
	h := remote
	if hh, _, err := net.SplitHostPort(remote); err == nil {
		h = hh
	}
	ip := net.ParseIP(h)
	if ip == nil || ip.To4() != nil {
		return h
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// blocked reports whether remote has no failure left, and if so how long
// until it has one.
func (l *failLimiter) blocked(remote string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.addrs[host(remote)]
	if !ok || a.lim.TokensAt(now) >= 1 {
		return 0, false
	}
	r := a.lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return wait, true
}

// entry returns the limit of address h, made (after pruning a full
// table) when h has none. l.mu held.
func (l *failLimiter) entry(h string, now time.Time) *addrLimit {
	a, ok := l.addrs[h]
	if !ok {
		if len(l.addrs) >= maxLimitedAddrs {
			l.prune(now)
		}
		a = &addrLimit{lim: rate.NewLimiter(l.every, l.burst)}
		l.addrs[h] = a
	}
	return a
}

// fail counts one failure of remote.
func (l *failLimiter) fail(remote string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.entry(host(remote), now)
	a.lim.AllowN(now, 1)
	a.refused = false
}

// take counts one failure of remote ahead of a credential check whose
// outcome is not known yet, so that checks running at once cannot
// together exceed remote's allowance (blocked, then fail after the
// check, would let every request that arrived before the first failure
// through). It reports false, with how long until remote has a failure
// left, when it has none. A check that succeeds gives the failure back
// with undo.
func (l *failLimiter) take(remote string, now time.Time) (undo func(), wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.entry(host(remote), now)
	r := a.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d, false
	}
	a.refused = false
	// Cancelled at the time it was reserved, the reservation gives its
	// token back (a later time would restore nothing).
	return func() { r.CancelAt(now) }, 0, true
}

// firstRefusal reports whether this is the first refusal of remote for
// its limit since its last failure (the one the audit records), and
// marks it reported.
func (l *failLimiter) firstRefusal(remote string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.addrs[host(remote)]
	if !ok || a.refused {
		return false
	}
	a.refused = true
	return true
}

// prune forgets the addresses whose limiter is full again (they have
// not failed for a whole window); when that frees nothing, it forgets
// every address (ten thousand addresses failing at once are an attack no
// per-address limit stops).
func (l *failLimiter) prune(now time.Time) {
	for h, a := range l.addrs {
		if a.lim.TokensAt(now) >= float64(l.burst) {
			delete(l.addrs, h)
		}
	}
	if len(l.addrs) >= maxLimitedAddrs {
		clear(l.addrs)
	}
}
