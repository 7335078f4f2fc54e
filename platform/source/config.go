package source

import (
	"errors"
	"fmt"
	"time"
)

// Config is the supervision policy for sources (section "sources"). The
// zero value is valid: every zero field takes its documented default.
type Config struct {
	// RestartInitial is the delay before the first restart of a source
	// whose Run failed. Each further failure within CrashLoopWindow doubles
	// it, up to RestartMax. Default 1s.
	RestartInitial time.Duration `koanf:"restart_initial"`
	// RestartMax caps the restart delay. Default 1m.
	RestartMax time.Duration `koanf:"restart_max"`
	// CrashLoopLimit is how many failures within CrashLoopWindow a source
	// may have; one more marks its component failed and it is not
	// restarted again. Default 5.
	CrashLoopLimit int `koanf:"crash_loop_limit"`
	// CrashLoopWindow is the window failures are counted in. Failures
	// older than the window are forgotten (which also resets the restart
	// delay). Default 1m.
	CrashLoopWindow time.Duration `koanf:"crash_loop_window"`
}

// Defaults of Config.
const (
	DefaultRestartInitial  = time.Second
	DefaultRestartMax      = time.Minute
	DefaultCrashLoopLimit  = 5
	DefaultCrashLoopWindow = time.Minute
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.RestartInitial == 0 {
		c.RestartInitial = DefaultRestartInitial
	}
	if c.RestartMax == 0 {
		c.RestartMax = DefaultRestartMax
	}
	if c.CrashLoopLimit == 0 {
		c.CrashLoopLimit = DefaultCrashLoopLimit
	}
	if c.CrashLoopWindow == 0 {
		c.CrashLoopWindow = DefaultCrashLoopWindow
	}
	return c
}

// Validate reports every invalid field of c (after defaults), each
// prefixed with its key.
func (c Config) Validate() error {
	var errs []error
	if c.RestartInitial < 0 {
		errs = append(errs, fmt.Errorf("restart_initial: must not be negative (got %s)", c.RestartInitial))
	}
	if c.RestartMax < 0 {
		errs = append(errs, fmt.Errorf("restart_max: must not be negative (got %s)", c.RestartMax))
	}
	if c.RestartMax > 0 && c.RestartInitial > c.RestartMax {
		errs = append(errs, fmt.Errorf("restart_initial: must not exceed restart_max %s (got %s)", c.RestartMax, c.RestartInitial))
	}
	if c.CrashLoopLimit < 0 {
		errs = append(errs, fmt.Errorf("crash_loop_limit: must not be negative (got %d)", c.CrashLoopLimit))
	}
	if c.CrashLoopWindow < 0 {
		errs = append(errs, fmt.Errorf("crash_loop_window: must not be negative (got %s)", c.CrashLoopWindow))
	}
	return errors.Join(errs...)
}

// restartDelay is the delay before the restart that follows the n-th
// failure (1-based) within the window.
func (c Config) restartDelay(n int) time.Duration {
	d := c.RestartInitial
	for i := 1; i < n && d < c.RestartMax; i++ {
		d *= 2
	}
	if d > c.RestartMax {
		d = c.RestartMax
	}
	return d
}
