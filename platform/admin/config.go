package admin

import (
	"fmt"
	"net"
	"strconv"
	"strings"
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
	// ProbesListen, when set, is a second listener serving /livez,
	// /readyz, /healthz and /metrics without authentication (for
	// Kubernetes probes and Prometheus). On Listen, /livez and /readyz
	// are public too; /healthz and /metrics need RoleViewer.
	ProbesListen string `koanf:"probes_listen"`
	// TLS turns on TLS on Listen (not on ProbesListen).
	TLS TLSConfig `koanf:"tls"`
	// Auth is who may call the server: tokens, users, sessions.
	Auth AuthConfig `koanf:"auth"`
	// Audit is where state-changing calls are recorded.
	Audit AuditConfig `koanf:"audit"`
}

// TLSConfig is admin.tls: the certificate and key, PEM files, read at
// start and again when either file changes (a renewed certificate is used
// from the next handshake on, without a restart).
type TLSConfig struct {
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// AuditConfig is admin.audit.
type AuditConfig struct {
	// RingSize is how many entries GET /admin/v1/audit can show (the
	// newest). Default 1000.
	RingSize int `koanf:"ring_size"`
	// Stream names the JetStream stream the entries are appended to when
	// the queue backend is JetStream. Default the JetStream stream prefix
	// (queue.jetstream.stream_prefix) with "_AUDIT" (StreamFor):
	// PLBA_AUDIT with the default prefix, so that deployments sharing a
	// NATS server under their own prefixes keep their audits apart. The
	// section's declared default is empty; the host fills the name in when
	// the configuration loads, so that the effective configuration
	// (`host config show`) shows it. A stream set here is used whatever
	// the prefix, unless it is one of the host's own streams (its work
	// streams, dead letters, finished keys, advisories, a key-value
	// bucket's): the host refuses to start then (exit 2).
	Stream string `koanf:"stream"`
	// MaxAge is how long the stream keeps an entry. Default 2160h (90 days).
	// The hosts of a cluster share the stream and must agree on MaxAge
	// and MaxMsgs: a host connected to servers it does not own refuses to
	// start when the stream has others (exit 2); one that owns its
	// embedded server applies its own.
	MaxAge time.Duration `koanf:"max_age"`
	// MaxMsgs bounds the entries the stream keeps (the oldest go first).
	// Default 1000000.
	MaxMsgs int64 `koanf:"max_msgs"`
}

// Defaults of AuditConfig. DefaultAuditStream is the audit stream of
// the default JetStream stream prefix ("PLBA" with AuditStreamSuffix).
const (
	DefaultAuditRingSize = 1000
	DefaultAuditStream   = "PLBA" + AuditStreamSuffix
	DefaultAuditMaxAge   = 90 * 24 * time.Hour
	DefaultAuditMaxMsgs  = 1_000_000
)

// AuditStreamSuffix follows the JetStream stream prefix in the name of
// the audit stream when AuditConfig.Stream is not set.
const AuditStreamSuffix = "_AUDIT"

// maxStreamName is the longest stream name the NATS server accepts.
const maxStreamName = 255

// StreamFor returns the audit stream of a host whose JetStream stream
// prefix (defaults applied) is prefix: Stream when set, else the prefix
// with AuditStreamSuffix. It fails when the name is not one the server
// accepts (a prefix so long that the name is over 255 bytes, say).
func (c AuditConfig) StreamFor(prefix string) (string, error) {
	name := c.Stream
	if name == "" {
		name = prefix + AuditStreamSuffix
	}
	if msg := streamNameProblem(name); msg != "" {
		return name, fmt.Errorf("the audit stream %s", msg)
	}
	return name, nil
}

// streamNameProblem says why name is not a stream name; "" when it is.
func streamNameProblem(name string) string {
	switch {
	case strings.ContainsAny(name, " .*>/\\"):
		return fmt.Sprintf("%q is not a stream name (no spaces, dots, wildcards or slashes)", name)
	case len(name) > maxStreamName:
		return fmt.Sprintf("%q is longer than the %d bytes of a stream name", name, maxStreamName)
	}
	return ""
}

// WithDefaults returns c with every zero value set to its default; an
// empty Stream becomes DefaultAuditStream (a host has filled it in from
// its stream prefix before: StreamFor).
func (c AuditConfig) WithDefaults() AuditConfig {
	if c.RingSize == 0 {
		c.RingSize = DefaultAuditRingSize
	}
	if c.Stream == "" {
		c.Stream = DefaultAuditStream
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultAuditMaxAge
	}
	if c.MaxMsgs == 0 {
		c.MaxMsgs = DefaultAuditMaxMsgs
	}
	return c
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
		Auth:              AuthConfig{}.withDefaults(),
		Audit:             AuditConfig{}.withDefaults(),
	}
}

// WithDefaults returns c with every zero timeout, limit and auth or audit
// setting at its default (the configuration applies it after validation,
// so that `host config show` and the digest give the values the server
// runs with). Audit.Stream stays empty when it is: it follows the host's
// stream prefix (AuditConfig.StreamFor).
func (c Config) WithDefaults() Config {
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
	c.Auth = c.Auth.withDefaults()
	c.Audit = c.Audit.withDefaults()
	return c
}

// withDefaults is WithDefaults leaving Stream empty when it is: the
// section's defaults, in which the stream follows the host's stream
// prefix (StreamFor).
func (c AuditConfig) withDefaults() AuditConfig {
	stream := c.Stream
	c = c.WithDefaults()
	c.Stream = stream
	return c
}

// Validate checks the section, naming every invalid key.
func (c Config) Validate() error {
	var ps config.Problems
	checkAddr(&ps, "listen", c.Listen)
	if c.ProbesListen != "" {
		checkAddr(&ps, "probes_listen", c.ProbesListen)
	}
	if c.TLS.Enabled() && (c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		ps.Add("tls", "cert_file and key_file go together (got cert_file %q, key_file %q)", c.TLS.CertFile, c.TLS.KeyFile)
	}
	ps = append(ps, c.Auth.validate(c.Listen)...)
	a := c.Audit
	if a.RingSize < 0 {
		ps.Add("audit.ring_size", "must not be negative (got %d)", a.RingSize)
	}
	if a.MaxAge < 0 {
		ps.Add("audit.max_age", "must not be negative (got %s)", a.MaxAge)
	}
	if a.MaxMsgs < 0 {
		ps.Add("audit.max_msgs", "must not be negative (got %d)", a.MaxMsgs)
	}
	if a.Stream != "" {
		if msg := streamNameProblem(a.Stream); msg != "" {
			ps.Add("audit.stream", "%s", msg)
		}
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

func checkAddr(ps *config.Problems, key, addr string) {
	if _, port, err := net.SplitHostPort(addr); err != nil {
		ps.Add(key, "%q is not host:port", addr)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		ps.Add(key, "port %q out of range 0-65535", port)
	}
}
