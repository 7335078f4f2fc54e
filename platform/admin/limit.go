package admin

import (
	"math"
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
//
// It remembers at most maxLimitedAddrs addresses. An address it
// remembers keeps its limit until the limit has refilled, whatever other
// addresses do: fresh addresses arriving when the table is full of
// addresses still limited share one limit, the overflow (the same
// allowance as one address), until entries refill and are forgotten. A
// flood of fresh addresses (an IPv6 /48 holds 65,536 /64s) is thus
// limited as one address, and lifts no address's limit.
type failLimiter struct {
	every rate.Limit
	burst int

	mu    sync.Mutex
	addrs map[string]*addrLimit
	// overflow is the limit shared by the addresses the full table has
	// no room for.
	overflow *addrLimit
	// nextPrune: when the table is full, it is pruned again no earlier
	// than this (no entry refills before; see prune).
	nextPrune time.Time
}

type addrLimit struct {
	lim     *rate.Limiter
	refused bool // a refusal since the last failure was reported (firstRefusal)
}

// maxLimitedAddrs bounds the addresses remembered; past it the ones whose
// limiter has filled up again are forgotten, and while none has, fresh
// addresses share the overflow limit.
const maxLimitedAddrs = 10_000

// minPruneGap is the least time between two prunings of a full table:
// one pruning looks at every entry, and a full table is looked at by
// every request of a fresh address.
const minPruneGap = time.Second

func newFailLimiter(attempts int, window time.Duration) *failLimiter {
	l := &failLimiter{
		every: rate.Every(window / time.Duration(attempts)),
		burst: attempts,
		addrs: make(map[string]*addrLimit),
	}
	l.overflow = l.newLimit()
	return l
}

func (l *failLimiter) newLimit() *addrLimit {
	return &addrLimit{lim: rate.NewLimiter(l.every, l.burst)}
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
	a := l.limitOf(host(remote), now)
	if a == nil || a.lim.TokensAt(now) >= 1 {
		return 0, false
	}
	r := a.lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return wait, true
}

// limitOf returns the limit of address h: its own; nil when it has none
// and the table has room for it (a fresh limit, full); or, when the
// table is full of addresses still limited (pruned first if one may have
// refilled), the overflow. l.mu held.
func (l *failLimiter) limitOf(h string, now time.Time) *addrLimit {
	if a, ok := l.addrs[h]; ok {
		return a
	}
	if len(l.addrs) < maxLimitedAddrs {
		return nil
	}
	if !now.Before(l.nextPrune) {
		l.prune(now)
		if len(l.addrs) < maxLimitedAddrs {
			return nil
		}
	}
	return l.overflow
}

// entry returns the limit of address h, made when h has none and the
// table has room (see limitOf). l.mu held.
func (l *failLimiter) entry(h string, now time.Time) *addrLimit {
	a := l.limitOf(h, now)
	if a == nil {
		a = l.newLimit()
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
// marks it reported. The overflow's refusals are reported as one
// address's: the first since the overflow last counted a failure.
func (l *failLimiter) firstRefusal(remote string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.addrs[host(remote)]
	if !ok {
		// Refused, and not in the table: the overflow refused it (an
		// address is forgotten only once its limit has refilled).
		a = l.overflow
	}
	if a.refused {
		return false
	}
	a.refused = true
	return true
}

// prune forgets the addresses whose limiter is full again (they have
// not failed for a whole window: a fresh limit is the same), and notes
// when the first of the others will be (nextPrune), at least minPruneGap
// on: until then, pruning would free nothing. The addresses still
// limited are kept, however many fresh ones arrive: forgetting them
// would lift their limit.
func (l *failLimiter) prune(now time.Time) {
	next := now.Add(minPruneGap)
	first := time.Time{}
	for h, a := range l.addrs {
		missing := float64(l.burst) - a.lim.TokensAt(now)
		if missing <= 0 {
			delete(l.addrs, h)
			continue
		}
		if at := now.Add(refillTime(missing, l.every)); first.IsZero() || at.Before(first) {
			first = at
		}
	}
	if first.After(next) {
		next = first
	}
	l.nextPrune = next
}

// refillTime is how long a limiter of rate every takes to earn tokens
// (0 for an infinite rate; bounded by the longest Duration).
func refillTime(tokens float64, every rate.Limit) time.Duration {
	if every == rate.Inf || every <= 0 {
		return 0
	}
	d := tokens / float64(every) * float64(time.Second)
	if d >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(d)
}
