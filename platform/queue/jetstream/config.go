package jetstream

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// Modes for Config.Mode.
const (
	// ModeEmbedded runs a NATS server inside the process (see package
	// embedded) and connects to it in process.
	ModeEmbedded = "embedded"
	// ModeExternal connects to the NATS servers in Config.URLs.
	ModeExternal = "external"
)

// Storage kinds for Config.Storage.
const (
	StorageFile   = "file"
	StorageMemory = "memory"
)

// Defaults applied by Config.WithDefaults.
const (
	DefaultStreamPrefix    = "PLBA"
	DefaultConsumer        = "plba-workers"
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultMaxDeliver      = 10
	DefaultAckWait         = 30 * time.Second
	DefaultPrefetch        = 64
	DefaultMaxPrefetch     = 1024
	DefaultMaxAckPending   = 10000
	DefaultPublishTimeout  = 10 * time.Second
	DefaultConnectTimeout  = 5 * time.Second
	DefaultMaxAsyncPending = 4096
	DefaultDeadMaxAge      = 30 * 24 * time.Hour
	DefaultDeadMaxBytes    = 1 << 30
)

// DeadConfig bounds the dead-letter stream <prefix>_DEAD (shared by every
// queue). A dead letter older than MaxAge expires; when a new one would
// exceed MaxBytes or MaxMsgs, the oldest are discarded to make room, and
// each discard is counted (Status.DeadDiscarded and the metric
// plba.queue.dead_discarded).
type DeadConfig struct {
	// MaxAge is how long a dead letter is kept. Default 720h (30 days).
	MaxAge time.Duration `koanf:"max_age"`
	// MaxBytes bounds the stream's size in bytes; -1: no bound. Default
	// 1 GiB.
	MaxBytes int64 `koanf:"max_bytes"`
	// MaxMsgs bounds the number of dead letters; -1 or 0: no bound.
	// Default -1.
	MaxMsgs int64 `koanf:"max_msgs"`
}

// DefaultConfig returns the section's declared defaults: the settings
// that do not depend on the mode (the others are filled by WithDefaults,
// because an embedded default would conflict with a configured URL).
func DefaultConfig() Config {
	return Config{Dead: DeadConfig{MaxAge: DefaultDeadMaxAge, MaxBytes: DefaultDeadMaxBytes, MaxMsgs: -1}}
}

// TLSConfig configures TLS towards external servers.
type TLSConfig struct {
	// CAFile is a PEM file of CAs to trust; empty uses the system pool.
	CAFile string `koanf:"ca_file"`
	// CertFile and KeyFile are the client certificate (mutual TLS).
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
	// InsecureSkipVerify disables server certificate checks (tests only).
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
}

func (t TLSConfig) enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

// Config configures the backend. It is the config section
// "queue.jetstream". The zero value runs an embedded server under
// ./data/nats with the defaults documented on each field.
type Config struct {
	// Mode is "embedded" or "external". Default: "external" when URLs is
	// set, else "embedded".
	Mode string `koanf:"mode"`
	// URL is one server URL or several separated by commas
	// ("nats://10.0.0.1:4222,nats://10.0.0.2:4222"); it is joined with
	// URLs. Setting either selects mode "external" by default.
	URL string `koanf:"url" secret:"userinfo"`
	// URLs are the servers of an external NATS cluster
	// ("nats://10.0.0.1:4222").
	URLs []string `koanf:"urls" secret:"userinfo"`
	// User and Password authenticate with a user name and password.
	User     string `koanf:"user"`
	Password string `koanf:"password" secret:"true"`
	// Token authenticates with a token.
	Token string `koanf:"token" secret:"true"`
	// NKeySeed authenticates with an NKey user seed ("SU..."). In a config
	// file, nkey_seed_file names a file to read it from.
	NKeySeed string `koanf:"nkey_seed" secret:"true"`
	// Creds authenticates with the content of a JWT credentials file (the
	// user JWT and its seed). In a config file, creds_file names the file.
	Creds string `koanf:"creds" secret:"true"`
	// TLS configures TLS (external mode).
	TLS TLSConfig `koanf:"tls"`
	// ConnectionName names the connection in server monitoring. Default
	// "plba".
	ConnectionName string `koanf:"connection_name"`
	// ConnectTimeout bounds the first connection. Default 5s.
	ConnectTimeout time.Duration `koanf:"connect_timeout"`

	// Replicas is the replication factor of the streams: 1 or 3 (3 needs a
	// JetStream cluster). Default 1.
	Replicas int `koanf:"replicas"`
	// Storage is "file" (default) or "memory" (lost when the servers stop).
	Storage string `koanf:"storage"`
	// DuplicateWindow is how long a task key is remembered for
	// de-duplication. Default 2m.
	DuplicateWindow time.Duration `koanf:"duplicate_window"`
	// MaxDeliver is how many deliveries a task gets before it is moved to
	// the dead letter (-1: unlimited). Default 10.
	MaxDeliver int `koanf:"max_deliver"`
	// AckWait is the consumer's lease: an unsettled delivery is redelivered
	// after it. Longer leases asked of Lease are kept alive with
	// in-progress acks; shorter ones last AckWait. Default 30s.
	AckWait time.Duration `koanf:"ack_wait"`
	// StreamPrefix prefixes every stream and subject name. Default "PLBA".
	StreamPrefix string `koanf:"stream_prefix"`
	// Consumer is the durable consumer name shared by every replica of the
	// host. Default "plba-workers".
	Consumer string `koanf:"consumer"`
	// Prefetch is how many messages per queue this process pulls ahead of
	// Lease calls at least. About the pool's concurrency is right; lower it
	// for long tasks so other replicas get their share. Default 64.
	Prefetch int `koanf:"prefetch"`
	// MaxPrefetch bounds how far the prefetch grows while Lease calls take
	// messages fast: the puller keeps about 10ms of work at the rate they
	// take them, between Prefetch and MaxPrefetch (see the package doc).
	// Default 1024, or Prefetch when that is larger; set it to Prefetch
	// for a buffer of a fixed size. Both are at most PrefetchLimit.
	MaxPrefetch int `koanf:"max_prefetch"`
	// MaxAckPending bounds deliveries in flight per queue across all
	// replicas (tasks waiting for a retry back-off count). Default 10000.
	MaxAckPending int `koanf:"max_ack_pending"`
	// AckSync waits for the server to confirm every Ack (slower; an ack lost
	// in a disconnect otherwise means one redelivery). Default false.
	AckSync bool `koanf:"ack_sync"`
	// PublishTimeout bounds how long Enqueue waits for the server to
	// acknowledge a publish. Default 10s.
	PublishTimeout time.Duration `koanf:"publish_timeout"`
	// MaxAsyncPending bounds unacknowledged asynchronous publishes (tasks
	// being enqueued and the finished-key records of acks together);
	// Enqueue of a larger batch waits for room as long as its context
	// allows (window.go). Default 4096.
	MaxAsyncPending int `koanf:"max_async_pending"`

	// Sync is how an embedded server flushes its file store: "interval"
	// (the default: an acknowledged task survives a process crash, and a
	// power cut loses at most the last sync interval) or "always" (every
	// write is flushed to disk before it is acknowledged: survives power
	// cuts, costs throughput; see BENCHMARKS.md). It sets
	// Embedded.Sync; with external servers the servers' own sync_interval
	// setting decides, so only "interval" (or empty) is accepted there.
	Sync string `koanf:"sync"`

	// MaxMsgs and MaxBytes bound each work stream (0: no bound, the
	// default). A full stream refuses new tasks (discard policy "new"):
	// Enqueue waits, retrying with back-off, until there is room or its
	// context ends, so back-pressure reaches the source and nothing queued
	// is dropped. The server cannot schedule messages in such a stream:
	// NotBefore tasks are then stored ready and given back with delayed
	// negative acks until their time. A stream created without a bound
	// cannot get one later (message schedules cannot be turned off): Start
	// of its queue fails saying so.
	MaxMsgs  int64 `koanf:"max_msgs"`
	MaxBytes int64 `koanf:"max_bytes"`

	// Dead bounds the dead-letter stream.
	Dead DeadConfig `koanf:"dead"`

	// Embedded configures the in-process server (mode "embedded").
	Embedded embedded.Config `koanf:"embedded"`
}

// servers returns URL and URLs as one list.
func (c Config) servers() []string {
	var out []string
	for _, u := range strings.Split(c.URL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	for _, u := range c.URLs {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeEmbedded
		if len(c.servers()) > 0 {
			c.Mode = ModeExternal
		}
	}
	if c.Sync != "" && c.Mode == ModeEmbedded {
		c.Embedded.Sync = c.Sync
	}
	if c.ConnectionName == "" {
		c.ConnectionName = "plba"
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Storage == "" {
		c.Storage = StorageFile
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.StreamPrefix == "" {
		c.StreamPrefix = DefaultStreamPrefix
	}
	if c.Consumer == "" {
		c.Consumer = DefaultConsumer
	}
	if c.Prefetch == 0 {
		c.Prefetch = DefaultPrefetch
	}
	if c.MaxPrefetch == 0 {
		c.MaxPrefetch = max(DefaultMaxPrefetch, c.Prefetch)
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.MaxAsyncPending == 0 {
		c.MaxAsyncPending = DefaultMaxAsyncPending
	}
	if c.Dead.MaxAge == 0 {
		c.Dead.MaxAge = DefaultDeadMaxAge
	}
	if c.Dead.MaxBytes == 0 {
		c.Dead.MaxBytes = DefaultDeadMaxBytes
	}
	if c.Dead.MaxMsgs == 0 {
		c.Dead.MaxMsgs = -1
	}
	c.Embedded = c.Embedded.WithDefaults()
	return c
}

// PrefetchLimit bounds Prefetch and MaxPrefetch: a pull asks for up to
// MaxPrefetch messages at once, and the client makes a buffer of that
// size for them (a prefetch of 1<<62 made the host panic at its first
// pull). The server delivers no more than MaxAckPending (default 10000)
// anyway.
const PrefetchLimit = 100_000

// ErrInvalidConfig wraps every Validate failure.
var ErrInvalidConfig = errors.New("jetstream: invalid config")

// Validate reports the first invalid field of c (after defaults).
func (c Config) Validate() error {
	c = c.WithDefaults()
	bad := func(key, format string, args ...any) error {
		return config.InvalidAs(ErrInvalidConfig, key, format, args...)
	}
	switch c.Mode {
	case ModeEmbedded:
		if len(c.servers()) > 0 {
			return bad("mode", "%q, but url/urls are set", c.Mode)
		}
		if c.Sync != "" && c.Sync != embedded.SyncInterval && c.Sync != embedded.SyncAlways {
			return bad("sync", "%q: want %q or %q", c.Sync, embedded.SyncInterval, embedded.SyncAlways)
		}
		if err := c.Embedded.Validate(); err != nil {
			return config.InvalidAs(ErrInvalidConfig, "embedded", "%v", err)
		}
		if c.Replicas != 1 {
			return bad("replicas", "%d: an embedded server has one replica", c.Replicas)
		}
	case ModeExternal:
		if len(c.servers()) == 0 {
			return bad("urls", "mode %q needs url or urls", c.Mode)
		}
		if err := c.checkURLs(); err != nil {
			return err
		}
		if c.Sync != "" && c.Sync != embedded.SyncInterval {
			return bad("sync", "%q: external servers sync as their own configuration says (sync_interval: always)", c.Sync)
		}
	default:
		return bad("mode", "%q: want %q or %q", c.Mode, ModeEmbedded, ModeExternal)
	}
	auth := 0
	if c.User != "" || c.Password != "" {
		auth++
	}
	for _, s := range []string{c.Token, c.NKeySeed, c.Creds} {
		if s != "" {
			auth++
		}
	}
	if auth > 1 {
		return bad("", "choose one of user/password, token, nkey_seed, creds")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return bad("tls", "cert_file and key_file go together")
	}
	if c.Replicas != 1 && c.Replicas != 3 {
		return bad("replicas", "%d: want 1 or 3", c.Replicas)
	}
	if c.Storage != StorageFile && c.Storage != StorageMemory {
		return bad("storage", "%q: want %q or %q", c.Storage, StorageFile, StorageMemory)
	}
	if c.DuplicateWindow < 0 {
		return bad("duplicate_window", "%s must not be negative", c.DuplicateWindow)
	}
	if c.MaxDeliver < -1 {
		return bad("max_deliver", "%d: want -1 (unlimited) or > 0", c.MaxDeliver)
	}
	if c.AckWait < time.Millisecond*10 {
		return bad("ack_wait", "%s: want at least 10ms", c.AckWait)
	}
	if c.StreamPrefix != encodeToken(c.StreamPrefix) {
		return bad("stream_prefix", "%q: only letters, digits and '-'", c.StreamPrefix)
	}
	if c.Consumer != encodeToken(c.Consumer) {
		return bad("consumer", "%q: only letters, digits and '-'", c.Consumer)
	}
	if c.Prefetch < 1 || c.MaxAckPending < 1 || c.MaxAsyncPending < 1 {
		return bad("", "prefetch, max_ack_pending and max_async_pending must be positive")
	}
	if c.Prefetch > PrefetchLimit {
		return bad("prefetch", "%d: want at most %d", c.Prefetch, PrefetchLimit)
	}
	if c.MaxPrefetch > PrefetchLimit {
		return bad("max_prefetch", "%d: want at most %d", c.MaxPrefetch, PrefetchLimit)
	}
	if c.MaxPrefetch < c.Prefetch {
		return bad("max_prefetch", "%d is below prefetch (%d)", c.MaxPrefetch, c.Prefetch)
	}
	if c.PublishTimeout < 0 || c.ConnectTimeout < 0 {
		return bad("", "publish_timeout and connect_timeout must not be negative")
	}
	if c.MaxMsgs < 0 {
		return bad("max_msgs", "%d: want 0 (no bound) or more", c.MaxMsgs)
	}
	if c.MaxBytes < 0 {
		return bad("max_bytes", "%d: want 0 (no bound) or more", c.MaxBytes)
	}
	if c.Dead.MaxAge < time.Minute {
		return bad("dead.max_age", "%s: want at least 1m", c.Dead.MaxAge)
	}
	if c.Dead.MaxBytes < -1 || c.Dead.MaxBytes > 0 && c.Dead.MaxBytes < 1<<20 {
		return bad("dead.max_bytes", "%d: want -1 (no bound) or at least 1048576 (1 MiB)", c.Dead.MaxBytes)
	}
	if c.Dead.MaxMsgs < -1 {
		return bad("dead.max_msgs", "%d: want -1 (no bound) or more than 0", c.Dead.MaxMsgs)
	}
	return nil
}

// checkURLs parses every server URL as the NATS client will (a URL
// without a scheme gets "nats://"), so that a malformed one fails
// validation naming its key instead of the first connection.
func (c Config) checkURLs() error {
	check := func(key, list string) error {
		for _, raw := range strings.Split(list, ",") {
			if raw = strings.TrimSpace(raw); raw == "" {
				continue
			}
			if err := checkURL(raw); err != nil {
				return config.InvalidAs(ErrInvalidConfig, key, "%s", config.RedactURLsIn(err.Error()))
			}
		}
		return nil
	}
	if err := check("url", c.URL); err != nil {
		return err
	}
	for i, u := range c.URLs {
		if err := check(fmt.Sprintf("urls[%d]", i), u); err != nil {
			return err
		}
	}
	return nil
}

// natsSchemes are the URL schemes the NATS client connects with.
var natsSchemes = map[string]bool{"nats": true, "tls": true, "ws": true, "wss": true}

// checkURL reports why raw is not a server URL the client can use.
func checkURL(raw string) error {
	s := raw
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, errors.Unwrap(err))
	}
	if !natsSchemes[strings.ToLower(u.Scheme)] {
		return fmt.Errorf("%q: scheme %q: want nats, tls, ws or wss", raw, u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q: no host", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q out of range", raw, p)
		}
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: a server URL has no path, query or fragment", raw)
	}
	return nil
}
