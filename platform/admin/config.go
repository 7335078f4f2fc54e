package admin

import (
	"net"
	"strconv"
	"time"

	"github.com/plba/plba/platform/config"
)

// Config is the "admin" configuration section. Every timeout bounds what
// one client can hold: a zero timeout takes its default, so a server is
// never unbounded.
type Config struct {
	// Listen is the address of the admin server. Default 127.0.0.1:8080;
	// port 0 picks a free port (the address is logged and in Server.Addr).
	Listen string `koanf:"listen"`
	// ReadHeaderTimeout bounds reading a request's headers. Default 5s
	// (against clients that open connections and never finish a request).
	ReadHeaderTimeout time.Duration `koanf:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included. Default
	// 10s: the admin routes take small bodies (the log level: 1 KiB).
	ReadTimeout time.Duration `koanf:"read_timeout"`
	// WriteTimeout bounds the time from the end of the request's headers
	// to the end of the response: handling and writing it. Default 30s.
	// The admin routes answer from memory (status, probes, metrics, the
	// log level; no profiles or streams), in milliseconds; raise it for a
	// contributed route that takes longer.
	WriteTimeout time.Duration `koanf:"write_timeout"`
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request. Default 60s.
	IdleTimeout time.Duration `koanf:"idle_timeout"`
	// ShutdownTimeout is the part of the host's stop budget
	// (lifecycle.stop_timeout) the admin server may spend waiting for
	// requests in progress; it takes at most half of the budget left, the
	// pools and stores stop after it. Connections still open then are
	// closed. Default 5s.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
}

// Defaults of Config.
const (
	DefaultListen            = "127.0.0.1:8080"
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultShutdownTimeout   = 5 * time.Second
)

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Listen:            DefaultListen,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       DefaultReadTimeout,
		WriteTimeout:      DefaultWriteTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		ShutdownTimeout:   DefaultShutdownTimeout,
	}
}

// withDefaults returns c with every zero timeout set to its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	for _, f := range []struct{ v, def *time.Duration }{
		{&c.ReadHeaderTimeout, &d.ReadHeaderTimeout},
		{&c.ReadTimeout, &d.ReadTimeout},
		{&c.WriteTimeout, &d.WriteTimeout},
		{&c.IdleTimeout, &d.IdleTimeout},
		{&c.ShutdownTimeout, &d.ShutdownTimeout},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	return c
}

// Validate checks the section, naming every invalid key.
func (c Config) Validate() error {
	var ps config.Problems
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		ps.Add("listen", "%q is not host:port", c.Listen)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		ps.Add("listen", "port %q out of range 0-65535", port)
	}
	for _, f := range []struct {
		key string
		v   time.Duration
	}{
		{"read_header_timeout", c.ReadHeaderTimeout},
		{"read_timeout", c.ReadTimeout},
		{"write_timeout", c.WriteTimeout},
		{"idle_timeout", c.IdleTimeout},
		{"shutdown_timeout", c.ShutdownTimeout},
	} {
		if f.v < 0 {
			ps.Add(f.key, "must not be negative (got %s)", f.v)
		}
	}
	return ps.Err()
}
