package imap

import (
	"fmt"
	"net"
	"time"
)

// TLSMode says how the connection to the server is secured.
type TLSMode string

// The TLS modes.
const (
	// TLSImplicit connects with TLS from the first byte (port 993).
	TLSImplicit TLSMode = "tls"
	// TLSStartTLS connects in plain text and upgrades with STARTTLS before
	// logging in (port 143).
	TLSStartTLS TLSMode = "starttls"
	// TLSNone sends everything, password included, in plain text. Allowed
	// only for a loopback host unless Config.AllowInsecure is set.
	TLSNone TLSMode = "none"
)

// Mode says how the source learns about new mail.
type Mode string

// The watch modes.
const (
	// ModePoll runs a UID SEARCH every PollInterval (with ±10% jitter).
	ModePoll Mode = "poll"
	// ModeIdle waits in IMAP IDLE and fetches as soon as the server reports
	// new mail, renews IDLE every IdleRenew and runs a watchdog search every
	// Reconcile. An IDLE the server ends on its own (ErrIdleEnded) is
	// started over at once, on a new connection, with the Reconnect
	// back-off. It falls back to polling when the server lacks IDLE, and,
	// on a connection on which the server refuses it (a NO or a BAD to
	// the IDLE command: NO [LIMIT] may pass), until it tries IDLE again
	// there, at the first poll once Reconcile has passed.
	ModeIdle Mode = "idle"
)

// Defaults of Config.
const (
	DefaultMailbox         = "INBOX"
	DefaultPollInterval    = 30 * time.Second
	DefaultIdleRenew       = 25 * time.Minute
	DefaultReconcile       = time.Minute
	DefaultBatchSize       = 50
	DefaultMaxMessageSize  = 25 << 20
	DefaultMaxBatchBytes   = 64 << 20
	DefaultProcessed       = "Processed"
	DefaultFailed          = "Failed"
	DefaultDialTimeout     = 15 * time.Second
	DefaultCommandTimeout  = 2 * time.Minute
	DefaultReconnectInit   = 250 * time.Millisecond
	DefaultReconnectMax    = 2 * time.Second
	DefaultInFlightTimeout = time.Hour
	DefaultRefusalSpan     = time.Minute
	// MaxIdleRenew is the bound IdleRenew must stay under: RFC 2177 lets a
	// server drop an idling client after 29 minutes.
	MaxIdleRenew = 29 * time.Minute
)

// Section is the configuration section Module declares and provides.
const Section = "imap"

// DefaultConfig returns the defaults of the "imap" section as `host config
// show` prints them: every default WithDefaults fills in, except port and
// name, which follow other keys (993 with tls "tls", else 143;
// "imap/<mailbox>") and stay unset until the source is built.
func DefaultConfig() Config {
	c := Config{}.WithDefaults()
	c.Port, c.Name = 0, ""
	return c
}

// Config is the "imap" configuration section of one mailbox source. The
// zero value plus Host, Username, Password, Queue and Kind is a working
// configuration once WithDefaults has filled the rest.
type Config struct {
	// Name is the source name (completions are routed back by it; keep it
	// stable). Default "imap/<Mailbox>".
	Name string `koanf:"name"`
	// Host is the server's host name or IP. Required.
	Host string `koanf:"host"`
	// Port is the server's TCP port. Default 993 with TLS "tls", else 143.
	Port int `koanf:"port"`
	// TLS is "tls" (implicit, default), "starttls" or "none".
	TLS TLSMode `koanf:"tls"`
	// InsecureSkipVerify accepts any server certificate (tests only).
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
	// AllowInsecure permits TLS "none" for a host that is not loopback.
	AllowInsecure bool `koanf:"allow_insecure"`
	// Username and Password log in (IMAP LOGIN). Required.
	Username string `koanf:"username"`
	Password string `koanf:"password" secret:"true"`
	// Mailbox is the folder watched. Default "INBOX".
	Mailbox string `koanf:"mailbox"`
	// Mode is "idle" (default) or "poll".
	Mode Mode `koanf:"mode"`
	// PollInterval is the search interval in poll mode (and in idle mode
	// when the server lacks IDLE). Default 30s.
	PollInterval time.Duration `koanf:"poll_interval"`
	// IdleRenew is how long one IDLE command lasts before it is renewed.
	// Default 25m; must be below 29m.
	IdleRenew time.Duration `koanf:"idle_renew"`
	// Reconcile is how often the scan selects the mailbox again and
	// searches all of it (reconcile.go), in either mode; in idle mode it
	// is also the watchdog interval (IDLE connections can go silent).
	// Default 1m.
	Reconcile time.Duration `koanf:"reconcile"`
	// BatchSize is the most tasks handed to one Emit call. Default 50.
	BatchSize int `koanf:"batch_size"`
	// MaxMessageSize is the largest message emitted, in bytes. Bigger ones
	// are not fetched: their stand-in (task.Rejected, without the message)
	// is emitted with the reason, so the pool dead-letters it and its
	// completion moves the message to OnFailure.MoveTo (or leaves it in
	// place when that is empty), as for any mail that cannot become a
	// task (Status.Oversized counts them; a message the server refuses
	// to return gets such a stand-in too, see Status.Refused). It is
	// checked against the
	// server's RFC822.SIZE and again against the body the server sends,
	// which is never read beyond it. Default 25 MiB.
	MaxMessageSize int64 `koanf:"max_message_size"`
	// MaxBatchBytes caps the payload bytes of one batch (and so the memory
	// one fetch round holds). At least 4 MiB, it also bounds what the
	// server's answer to one fetch may make the source read besides the
	// body literals it reads itself (bounded by MaxMessageSize each): the
	// answer to a metadata fetch (envelopes, sizes, dates; the scan's,
	// and the completions' lookups by Message-ID), a body sent as a
	// quoted string, items not asked for, which the client holds in
	// memory whole. An answer beyond it (a hostile or broken server
	// sending a string of gigabytes) fails the fetch, its error naming
	// the limit, and ends the connection, retried with back-off; the
	// mails asked for are then fetched alone, and one whose answer alone
	// exceeds it every time is given up as a mail the server drops the
	// connection on (see Status.Refused). It bounds so the answers to
	// the other commands (the greeting and login, SELECT, STATUS, LIST,
	// CREATE) and what the server sends between commands; those that
	// grow with the mailbox (UID SEARCH, NOOP, IDLE, STORE, COPY, MOVE,
	// EXPUNGE) may take 12 bytes per UID the mailbox can hold if that
	// is more (see meter.go). Default 64 MiB.
	MaxBatchBytes int64 `koanf:"max_batch_bytes"`
	// Queue and Kind are set on every task emitted. Kind is required; an
	// empty Queue lets the runtime route by Kind.
	Queue string `koanf:"queue"`
	Kind  string `koanf:"kind"`
	// OnSuccess is what Complete does to a message whose task succeeded.
	OnSuccess SuccessAction `koanf:"on_success"`
	// OnFailure is what Complete does to a message whose task was
	// dead-lettered.
	OnFailure FailureAction `koanf:"on_failure"`
	// Reconnect is the back-off between connection attempts.
	Reconnect Backoff `koanf:"reconnect"`
	// DialTimeout bounds connecting, TLS and login. Default 15s.
	DialTimeout time.Duration `koanf:"dial_timeout"`
	// CommandTimeout is how long a command of the watching connection
	// (SELECT, SEARCH, FETCH, MOVE, ending an IDLE) may wait for the
	// server without any progress. When it passes, the connection is
	// closed and the source reconnects with back-off: a server that stops
	// answering while the TCP connection stays up does not stall the
	// source. Waiting in IDLE is not bounded by it (IDLE is renewed every
	// min(Reconcile, IdleRenew)). A metadata fetch must be done within it
	// whatever its progress; a body fetch within it plus the bytes asked
	// for (the messages' RFC822.SIZE) at 64 KiB/s, so that a server
	// dripping an answer, a byte at a time, cannot hold the session and
	// the mail behind it: the fetch fails, its error naming the limit,
	// and its messages are fetched alone next (a mail cut so whenever it
	// is fetched alone is set aside, see Status.SetAside). Default 2m.
	CommandTimeout time.Duration `koanf:"command_timeout"`
	// InFlightTimeout is how long an emitted message may wait for its
	// task's completion before the source emits it again. The backend
	// drops the second task only while it still remembers the key (the
	// memory backend while the task exists, JetStream within its
	// duplicate_window, 2m by default), so a task that waits longer runs
	// twice: the application must be idempotent per message, as the
	// mailorder store is. Keep it above the longest retry schedule of the
	// queue. Default 1h.
	InFlightTimeout time.Duration `koanf:"inflight_timeout"`
	// RefusalSpan is the shortest time over which the server must keep
	// refusing one message, while it returns the others of its batch, or
	// another message of the mailbox when that one is all there is to
	// ask for (see control), or keep closing the connection whenever
	// that message alone is fetched while it returns the body of other
	// mail in the session (see poison.go), before the message is given
	// up and its stand-in dead-lettered (see
	// RefusedSessionsBeforeSetAside): long enough that a server
	// restarting, or failing for a moment, is not taken for a bad mail.
	// A completion's lookup by content sets a message aside over it too
	// when no other message of its folder shows that the server serves
	// (see completion_poison.go). Reconnect.Max, when longer, is the
	// span. Default 1m.
	RefusalSpan time.Duration `koanf:"refusal_span"`
	// Exclusive runs the source on one host of the cluster at a time: the
	// runtime holds a lease named after the source (on JetStream, in a
	// key-value bucket shared by the hosts; see sources.lease) and runs
	// the source only while it holds it, so two hosts never watch the
	// mailbox at once. Completions are applied by whichever host handled
	// the task, on its own connection. Default true.
	Exclusive *bool `koanf:"exclusive"`
}

// SuccessAction is applied to a message after its task succeeded. The
// pointer fields tell "unset" (nil: the default) from an explicit value.
type SuccessAction struct {
	// Seen flags the message \Seen. Default true.
	Seen *bool `koanf:"seen"`
	// MoveTo moves the message to this folder (created when missing).
	// Default "Processed"; "" leaves it in place, and then the mailbox's
	// \Seen flag is what tells processed mail from new mail: the source
	// only takes unseen messages, so a mail that someone (a person in a
	// mail client, another program) marks as read before the source
	// fetched it is never emitted. Use a folder where people read the
	// mailbox too. Either way, the mail of a task that succeeds after its
	// dead letter (re-driven) is taken out of OnFailure.MoveTo: to this
	// folder, or, when it is "", back into the mailbox, flagged \Seen.
	MoveTo *string `koanf:"move_to"`
}

// FailureAction is applied to a message after its task was dead-lettered.
type FailureAction struct {
	// MoveTo moves the message to this folder (created when missing).
	// Default "Failed"; "" leaves it in place (it will be emitted again
	// after a restart and de-duplicated by its key while the backend
	// remembers it). A name the server cannot create (Dovecot refuses
	// "/" where its hierarchy separator is ".": use "Orders.Failed"
	// there) holds up the dead letters only: they are retried, the
	// server's answer in Status.LastCompletionError.
	MoveTo *string `koanf:"move_to"`
}

// Backoff is the exponential back-off (±50% jitter) of reconnecting and
// of retrying completions. Its defaults are short so that a server that is
// back after an outage is used again within about 2 s.
type Backoff struct {
	// Initial is the first delay. Default 250ms.
	Initial time.Duration `koanf:"initial"`
	// Max caps the delay: at most MaxReconnectDelay (50 years). Default
	// 2s.
	Max time.Duration `koanf:"max"`
}

// MaxReconnectDelay bounds Backoff.Max (and so Initial): a delay is drawn
// up to 50% above its step, and the draw must still fit a time.Duration;
// past it a delay wrapped round to a negative one and the source
// reconnected at once. Fifty years.
const MaxReconnectDelay = 50 * 365 * 24 * time.Hour

// Ptr returns a pointer to v, for the optional fields of Config.
func Ptr[T any](v T) *T { return &v }

// WithDefaults returns a copy of c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.TLS == "" {
		c.TLS = TLSImplicit
	}
	if c.Port == 0 {
		if c.TLS == TLSImplicit {
			c.Port = 993
		} else {
			c.Port = 143
		}
	}
	if c.Mailbox == "" {
		c.Mailbox = DefaultMailbox
	}
	if c.Name == "" {
		c.Name = "imap/" + c.Mailbox
	}
	if c.Mode == "" {
		c.Mode = ModeIdle
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.IdleRenew == 0 {
		c.IdleRenew = DefaultIdleRenew
	}
	if c.Reconcile == 0 {
		c.Reconcile = DefaultReconcile
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.OnSuccess.Seen == nil {
		c.OnSuccess.Seen = Ptr(true)
	}
	if c.OnSuccess.MoveTo == nil {
		c.OnSuccess.MoveTo = Ptr(DefaultProcessed)
	}
	if c.OnFailure.MoveTo == nil {
		c.OnFailure.MoveTo = Ptr(DefaultFailed)
	}
	if c.Reconnect.Initial == 0 {
		c.Reconnect.Initial = DefaultReconnectInit
	}
	if c.Reconnect.Max == 0 {
		c.Reconnect.Max = DefaultReconnectMax
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
	if c.InFlightTimeout == 0 {
		c.InFlightTimeout = DefaultInFlightTimeout
	}
	if c.RefusalSpan == 0 {
		c.RefusalSpan = DefaultRefusalSpan
	}
	if c.Exclusive == nil {
		c.Exclusive = Ptr(true)
	}
	return c
}

// refusalSpan is the shortest span over which a message is refused
// before it is given up: RefusalSpan, or Reconnect.Max when longer.
func (c Config) refusalSpan() time.Duration { return max(c.RefusalSpan, c.Reconnect.Max) }

// addr is the host:port to dial.
func (c Config) addr() string { return net.JoinHostPort(c.Host, fmt.Sprint(c.Port)) }
