package sqlite

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/plba/plba/platform/config"
)

// Config configures the SQLite store.
type Config struct {
	// Path is the database file; it is created when missing. Required. It
	// must not contain '?', and must be a regular file when it exists. ":memory:" is a database in memory, gone when
	// the store closes (for tests and trials): one connection serves
	// writes and reads.
	Path string `koanf:"path"`
	// BusyTimeout is how long a statement waits for a lock held by another
	// process, in whole milliseconds: at least 1ms, at most
	// MaxBusyTimeout. Default 5s.
	BusyTimeout time.Duration `koanf:"busy_timeout"`
	// Synchronous is the PRAGMA synchronous level: "NORMAL" (default, see
	// the package documentation) or "FULL".
	Synchronous string `koanf:"synchronous"`
	// MaxReaders is the size of the read connection pool. Default 4.
	MaxReaders int `koanf:"max_readers"`
}

// MaxBusyTimeout is the largest Config.BusyTimeout: SQLite's busy_timeout
// is a 32-bit count of milliseconds.
const MaxBusyTimeout = (1<<31 - 1) * time.Millisecond

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.BusyTimeout == 0 {
		c.BusyTimeout = 5 * time.Second
	}
	if c.Synchronous == "" {
		c.Synchronous = "NORMAL"
	}
	if c.MaxReaders == 0 {
		c.MaxReaders = 4
	}
	return c
}

// Validate reports a configuration that cannot work: every setting at
// fault, each as "key: problem", joined under "sqlite store: config: ".
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Path == "":
		errs = append(errs, errors.New("path: required"))
	case strings.ContainsRune(c.Path, '?'):
		errs = append(errs, fmt.Errorf("path: %q must not contain '?'", c.Path))
	case c.Path != memoryPath:
		// SQLite fails on a named pipe, a device or a directory only
		// with "disk I/O error", after Open made the lock and journal
		// files beside it; a missing file is created.
		if err := config.RegularFile(c.Path); err != nil {
			errs = append(errs, fmt.Errorf("path: %w", err))
		}
	}
	// Under 1ms the PRAGMA reads 0, which turns waiting off: a statement
	// would fail at once on any lock; over the limit it reads 0 too.
	if c.BusyTimeout != 0 && (c.BusyTimeout < time.Millisecond || c.BusyTimeout > MaxBusyTimeout) {
		errs = append(errs, fmt.Errorf("busy_timeout: must be between 1ms and %v, got %s", MaxBusyTimeout, c.BusyTimeout))
	}
	if c.MaxReaders < 0 {
		errs = append(errs, fmt.Errorf("max_readers: must not be negative, got %d", c.MaxReaders))
	}
	switch strings.ToUpper(c.Synchronous) {
	case "NORMAL", "FULL", "EXTRA":
	default:
		errs = append(errs, fmt.Errorf("synchronous: must be NORMAL, FULL or EXTRA, got %q", c.Synchronous))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite store: config: %w", err)
	}
	return nil
}

func (c Config) dsn() string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", c.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", fmt.Sprintf("synchronous(%s)", strings.ToUpper(c.Synchronous)))
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	return c.Path + "?" + q.Encode()
}
