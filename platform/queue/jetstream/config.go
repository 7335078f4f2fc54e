package jetstream

import (
	"strings"
	"time"

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
// each discard is counted (Status.DeadDiscarded, and Stats.DeadDiscarded
// of its queue, which telemetry exports as plba.queue.dead_discarded).
// Every host on the stream prefix must have
// the same (agree.go).
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
	// ConnectTimeout bounds the first connection. Default 5s, at least
	// 10ms.
	ConnectTimeout time.Duration `koanf:"connect_timeout"`

	// Replicas, DuplicateWindow, MaxDeliver, AckWait, MaxAckPending,
	// MaxMsgs, MaxBytes and Dead are stored in the streams and consumers
	// every host shares: a host connected to servers it does not own
	// refuses to start when they differ from what it finds there
	// (ErrSettingsDiffer, agree.go).
	//
	// Replicas is the replication factor of the streams: 1 or 3 (3 needs a
	// JetStream cluster). Default 1.
	Replicas int `koanf:"replicas"`
	// Storage is "file" (default) or "memory" (lost when the servers stop).
	// The server cannot change a stream's storage: a host that finds its
	// streams with another refuses to start naming the key (exit 2).
	Storage string `koanf:"storage"`
	// DuplicateWindow is how long a task key is remembered for
	// de-duplication. Default 2m, at least 1s.
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
	// replicas (tasks waiting for a retry back-off count). Every host must
	// have the same. Default 10000.
	MaxAckPending int `koanf:"max_ack_pending"`
	// AckSync waits for the server to confirm every Ack (slower; an ack lost
	// in a disconnect otherwise means one redelivery). Default false.
	AckSync bool `koanf:"ack_sync"`
	// PublishTimeout bounds how long Enqueue waits for the server to
	// acknowledge a publish. Default 10s, at least 10ms.
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
	// of its queue fails saying so. Every host must have the same.
	MaxMsgs  int64 `koanf:"max_msgs"`
	MaxBytes int64 `koanf:"max_bytes"`

	// Dead bounds the dead-letter stream.
	Dead DeadConfig `koanf:"dead"`

	// Embedded configures the in-process server (mode "embedded").
	Embedded embedded.Config `koanf:"embedded"`

	// findScan bounds the messages of a work stream one lookup reads
	// (maxFindScan when 0): tests lower it, so that a backlog beyond it
	// is quick to build and to read under the race detector.
	findScan int64
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
