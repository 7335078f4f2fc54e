package source

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/plba/plba/platform/config"
)

// Config is the supervision policy for sources (section "sources"). The
// zero value is valid: every zero field takes its documented default.
//
// A source whose Run fails is restarted, for ever, after a delay that
// starts at RestartInitial and doubles with each failure up to RestartMax.
// More than CrashLoopLimit failures within CrashLoopWindow show it failed
// (in /healthz and /admin/v1/status) until it recovers; it is restarted
// all the same. It has recovered, and its delay starts over, once a
// restarted Run shows it works: a poll ends without error, a task is
// emitted, or it stays up for CrashLoopWindow.
type Config struct {
	// RestartInitial is the delay before the first restart of a source
	// whose Run failed. Each further failure doubles it, up to
	// RestartMax. Default 1s.
	RestartInitial time.Duration `koanf:"restart_initial"`
	// RestartMax caps the restart delay: at most MaxRestartDelay (50
	// years), as RestartInitial. Default 5m.
	RestartMax time.Duration `koanf:"restart_max"`
	// RestartJitter spreads each delay by a random factor in
	// [1-RestartJitter, 1+RestartJitter] (never beyond RestartMax), so
	// replicas do not retry a server in step. In [0, 1]; default 0.2; a
	// negative value means none.
	RestartJitter float64 `koanf:"restart_jitter"`
	// CrashLoopLimit is how many failures within CrashLoopWindow a source
	// may have; one more shows its component failed (and stops the host
	// if lifecycle.policies says "stop" for it) until it recovers. It is
	// restarted either way. Default 5.
	CrashLoopLimit int `koanf:"crash_loop_limit"`
	// CrashLoopWindow is the window failures are counted in. Failures
	// older than the window are forgotten; a restarted Run that stays up
	// for the whole window has recovered. Default 1m.
	CrashLoopWindow time.Duration `koanf:"crash_loop_window"`
	// GateReadiness names the sources whose state gates the host's
	// readiness: while one of them is not running (failing, or waiting
	// for a restart) /readyz answers 503. Other sources show their state
	// in /healthz and /admin/v1/status only. A source never drives
	// liveness (/livez): it follows an outside dependency, which a
	// restart of the process would not bring back. Default none.
	GateReadiness []string `koanf:"gate_readiness"`
	// Lease configures the leases of exclusive sources (a source that
	// must run on one host of the cluster at a time: an IMAP mailbox, a
	// schedule).
	Lease LeaseConfig `koanf:"lease"`
}

// Defaults of Config.
const (
	DefaultRestartInitial  = time.Second
	DefaultRestartMax      = 5 * time.Minute
	DefaultRestartJitter   = 0.2
	DefaultCrashLoopLimit  = 5
	DefaultCrashLoopWindow = time.Minute
)

// MaxRestartDelay bounds RestartInitial and RestartMax: a delay is spread
// by up to RestartJitter (at most 1) above them, and the spread delay must
// still fit a time.Duration; past it a delay wrapped round to a negative
// one and the source restarted at once. Fifty years.
const MaxRestartDelay = 50 * 365 * 24 * time.Hour

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.RestartInitial == 0 {
		c.RestartInitial = DefaultRestartInitial
	}
	if c.RestartMax == 0 {
		c.RestartMax = DefaultRestartMax
	}
	if c.RestartJitter == 0 {
		c.RestartJitter = DefaultRestartJitter
	}
	if c.CrashLoopLimit == 0 {
		c.CrashLoopLimit = DefaultCrashLoopLimit
	}
	if c.CrashLoopWindow == 0 {
		c.CrashLoopWindow = DefaultCrashLoopWindow
	}
	c.Lease = c.Lease.WithDefaults()
	return c
}

// Validate reports every invalid field of c (after defaults), each
// prefixed with its key.
func (c Config) Validate() error {
	var ps config.Problems
	if c.RestartInitial < 0 {
		ps.Add("restart_initial", "must not be negative (got %s)", c.RestartInitial)
	}
	if c.RestartMax < 0 {
		ps.Add("restart_max", "must not be negative (got %s)", c.RestartMax)
	}
	for _, f := range []struct {
		key string
		v   time.Duration
	}{{"restart_initial", c.RestartInitial}, {"restart_max", c.RestartMax}} {
		if f.v > MaxRestartDelay {
			ps.Add(f.key, "must be at most %s (got %s)", MaxRestartDelay, f.v)
		}
	}
	// Against the max in effect: a zero RestartMax is the default one.
	if limit := c.WithDefaults().RestartMax; c.RestartInitial > limit && limit <= MaxRestartDelay && c.RestartInitial <= MaxRestartDelay {
		ps.Add("restart_initial", "must not exceed restart_max %s (got %s)", limit, c.RestartInitial)
	}
	if c.RestartJitter > 1 {
		ps.Add("restart_jitter", "must be at most 1 (got %g)", c.RestartJitter)
	}
	if c.CrashLoopLimit < 0 {
		ps.Add("crash_loop_limit", "must not be negative (got %d)", c.CrashLoopLimit)
	}
	if c.CrashLoopWindow < 0 {
		ps.Add("crash_loop_window", "must not be negative (got %s)", c.CrashLoopWindow)
	}
	c.Lease.WithDefaults().problems(&ps, "lease.")
	for i, n := range c.GateReadiness {
		if j := slices.Index(c.GateReadiness, n); j < i {
			ps.Add(fmt.Sprintf("gate_readiness[%d]", i), "source %q is already listed (gate_readiness[%d])", n, j)
		}
	}
	return ps.Err()
}

// checkGates reports, under the section's key, every source named in
// GateReadiness that is not among names.
func (c Config) checkGates(names []string) error {
	var ps config.Problems
	for i, n := range c.GateReadiness {
		if !slices.Contains(names, n) {
			known := "none"
			if len(names) > 0 {
				known = strings.Join(names, ", ")
			}
			ps.Add(fmt.Sprintf("sources.gate_readiness[%d]", i), "no source %q (known: %s)", n, known)
		}
	}
	return ps.Err()
}

// backoff returns the restart delays: RestartInitial doubling up to
// RestartMax, spread by RestartJitter.
func (c Config) backoff() *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     c.RestartInitial,
		RandomizationFactor: max(c.RestartJitter, 0),
		Multiplier:          2,
		MaxInterval:         c.RestartMax,
	}
	b.Reset()
	return b
}
