package postgres

import (
	"errors"
	"fmt"
	"time"
)

// Config configures the PostgreSQL store.
type Config struct {
	// URL is the connection string, as a URL
	// ("postgres://user:pass@host:5432/db?sslmode=disable") or in key=value
	// form. Required. It may hold a password: it is a secret.
	URL string `koanf:"url" secret:"true"`
	// Schema holds the store's tables; it is created when missing. Default
	// "public".
	Schema string `koanf:"schema"`
	// MaxConns is the most connections the store opens: 1 to
	// MaxMaxConns. Default 4.
	MaxConns int `koanf:"max_conns"`
	// IdleInTransactionTimeout is how long the server keeps a session of
	// the store that sits idle inside a transaction (its
	// idle_in_transaction_session_timeout) before it ends the session and
	// rolls the transaction back. A host that froze or was cut off in the
	// middle of SaveOrder holds the order's unique key until then, and
	// any other host storing the same order (its redelivery) waits for
	// it; the server alone would notice the lost host only by TCP
	// keepalive, after hours. The store's transactions are never idle
	// longer than a round trip. At least 1ms, at most
	// MaxIdleInTransactionTimeout (what the server takes). Default 10s.
	IdleInTransactionTimeout time.Duration `koanf:"idle_in_transaction_timeout"`
}

// DefaultIdleInTransactionTimeout is the default of
// Config.IdleInTransactionTimeout.
const DefaultIdleInTransactionTimeout = 10 * time.Second

// MaxIdleInTransactionTimeout is the largest
// Config.IdleInTransactionTimeout: PostgreSQL's
// idle_in_transaction_session_timeout is a 32-bit count of milliseconds,
// and a server refuses every connection that asks for more.
const MaxIdleInTransactionTimeout = (1<<31 - 1) * time.Millisecond

// MaxMaxConns is the largest Config.MaxConns: far more than a server
// serves one client (PostgreSQL's max_connections is 100 by default); the
// store sets its pool up for that many connections when it opens.
const MaxMaxConns = 1000

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Schema == "" {
		c.Schema = "public"
	}
	if c.MaxConns == 0 {
		c.MaxConns = 4
	}
	if c.IdleInTransactionTimeout == 0 {
		c.IdleInTransactionTimeout = DefaultIdleInTransactionTimeout
	}
	return c
}

// Validate reports a configuration that cannot work. It does not echo the
// URL, which may hold a password. It parses the URL, which reads the files
// its TLS settings, the PG* environment or a service file name: each must
// be a regular file of at most 4 MiB (a named pipe would block the
// validation for ever); a passfile may also be a directory or the null
// device, which pgx does without.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("url: required"))
	} else if _, err := parseURL(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	}
	if c.MaxConns < 1 || c.MaxConns > MaxMaxConns {
		errs = append(errs, fmt.Errorf("max_conns: must be between 1 and %d, got %d", MaxMaxConns, c.MaxConns))
	}
	if c.Schema == "" {
		errs = append(errs, errors.New("schema: required"))
	}
	if c.IdleInTransactionTimeout < time.Millisecond || c.IdleInTransactionTimeout > MaxIdleInTransactionTimeout {
		errs = append(errs, fmt.Errorf("idle_in_transaction_timeout: must be between 1ms and %v (PostgreSQL's limit), got %v", MaxIdleInTransactionTimeout, c.IdleInTransactionTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("postgres store: config: %w", err)
	}
	return nil
}
