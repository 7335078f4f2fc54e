package mailorder

import (
	"errors"
	"net"
	"strings"

	"github.com/plba/plba/apps/mailorder/domain"
	"github.com/plba/plba/apps/mailorder/store/postgres"
	"github.com/plba/plba/apps/mailorder/store/sqlite"
	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/platform/config"
)

// Section is the application's configuration section.
const Section = "mailorder"

// Kind is the task kind of one order mail.
const Kind = "mailorder.mail"

// DefaultMaxMessageSize is the default of mailbox.max_message_size: 7 MiB,
// what the embedded NATS server (8 MiB max payload) carries with room for
// the task's headers, and room enough for a 5 MiB attachment
// (limits.max_attachment_bytes) in base64.
const DefaultMaxMessageSize = 7 << 20

// MaxDemoMails is the most sample mails demo.mails may ask for: they are
// made and put in the in-memory mailbox before the host starts, and a
// million of them would hold the start for minutes and fill the memory.
const MaxDemoMails = 10000

// Store drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Config is the "mailorder" section.
type Config struct {
	// Queue is the queue the mail tasks go on (its pool is configured under
	// workers.<queue>). Default "mailorder".
	Queue string `koanf:"queue"`
	// Mailbox is the IMAP mailbox orders arrive in (see modules/imap for
	// every key). With demo.enabled, host, port, tls, username and password
	// are those of the embedded server and need not be set.
	Mailbox MailboxConfig `koanf:"mailbox"`
	// Store is where orders are kept.
	Store StoreConfig `koanf:"store"`
	// Limits are the domain's limits (mail and attachment sizes, lines).
	Limits domain.Config `koanf:"limits"`
	// Demo starts an embedded IMAP server seeded with sample order mails.
	Demo DemoConfig `koanf:"demo"`
}

// MailboxConfig is modules/imap's Config; its validation runs (with the
// demo's overrides) when the application is built.
type MailboxConfig imap.Config

// StoreConfig chooses and configures the order store.
type StoreConfig struct {
	// Driver is "sqlite" (default) or "postgres".
	Driver string `koanf:"driver"`
	// SQLite configures the SQLite store. Default path ./data/mailorder.db.
	SQLite SQLiteConfig `koanf:"sqlite"`
	// Postgres configures the PostgreSQL store (url is required with
	// driver postgres).
	Postgres PostgresConfig `koanf:"postgres"`
}

// SQLiteConfig is the SQLite store's Config.
type SQLiteConfig sqlite.Config

// PostgresConfig is the PostgreSQL store's Config.
type PostgresConfig postgres.Config

// DemoConfig configures the embedded demo mailbox.
type DemoConfig struct {
	// Enabled starts an in-memory IMAP server (plain IMAP on loopback) and
	// points the source at it. Default false.
	Enabled bool `koanf:"enabled"`
	// Listen is the server's address. Default 127.0.0.1:0 (a free port,
	// logged at start).
	Listen string `koanf:"listen"`
	// Mails is how many sample order mails are put in the INBOX at start,
	// a few of them malformed: at most MaxDemoMails. Default 50.
	Mails int `koanf:"mails"`
	// Username and Password are the demo account's. Default demo/demo.
	Username string `koanf:"username"`
	Password string `koanf:"password" secret:"true"`
}

// DefaultConfig returns the defaults documented on Config, with every
// default of the parts filled in (so "host config show" shows them).
// Two mailbox keys stay empty on purpose: port (993 with tls "tls", else
// 143) and name ("imap/<mailbox>"), which follow other keys.
func DefaultConfig() Config {
	mb := imap.Config{}.WithDefaults()
	mb.Port, mb.Name = 0, ""
	// A mail must fit in one task: the embedded NATS carries 8 MiB.
	mb.MaxMessageSize = DefaultMaxMessageSize
	limits := domain.Config{}.WithDefaults()
	limits.Now = nil
	return Config{
		Queue:   "mailorder",
		Mailbox: MailboxConfig(mb),
		Store: StoreConfig{
			Driver:   DriverSQLite,
			SQLite:   SQLiteConfig(sqlite.Config{Path: "./data/mailorder.db"}.WithDefaults()),
			Postgres: PostgresConfig(postgres.Config{}.WithDefaults()),
		},
		Limits: limits,
		Demo:   DemoConfig{Listen: "127.0.0.1:0", Mails: 50, Username: "demo", Password: "demo"},
	}
}

// Validate checks the section: the store driver and its settings, the
// demo settings, and the mailbox as the source will use it.
func (c Config) Validate() error {
	var ps config.Problems
	if c.Queue == "" {
		ps.Add("queue", "must not be empty")
	}
	switch c.Store.Driver {
	case DriverSQLite:
		addKeyed(&ps, "store.sqlite", sqlite.Config(c.Store.SQLite).WithDefaults().Validate())
	case DriverPostgres:
		addKeyed(&ps, "store.postgres", postgres.Config(c.Store.Postgres).WithDefaults().Validate())
	default:
		ps.Add("store.driver", "must be %q or %q (got %q)", DriverSQLite, DriverPostgres, c.Store.Driver)
	}
	if c.Demo.Enabled {
		if _, _, err := net.SplitHostPort(c.Demo.Listen); err != nil {
			ps.Add("demo.listen", "%q is not host:port", c.Demo.Listen)
		}
		if c.Demo.Mails < 0 || c.Demo.Mails > MaxDemoMails {
			ps.Add("demo.mails", "must be between 0 and %d (got %d)", MaxDemoMails, c.Demo.Mails)
		}
		if c.Demo.Username == "" || c.Demo.Password == "" {
			ps.Add("demo", "username and password must not be empty")
		}
	}
	if c.Mailbox.Kind != "" || c.Mailbox.Queue != "" {
		ps.Add("mailbox", "kind and queue are set by the application (use mailorder.queue)")
	}
	if err := c.source(demoAddr{host: "127.0.0.1", port: 143}).Validate(); err != nil {
		var joined interface{ Unwrap() []error }
		errs := []error{err}
		if errors.As(err, &joined) {
			errs = joined.Unwrap()
		}
		for _, e := range errs {
			var ce *imap.ConfigError
			if errors.As(e, &ce) {
				ps.Add("mailbox."+ce.Key, "%s", ce.Msg)
			} else {
				ps.Add("mailbox", "%v", e)
			}
		}
	}
	return ps.Err()
}

// addKeyed adds the problems of err, a store's Validate error, at their
// keys below prefix: err joins errors that each start with the key at
// fault ("max_conns: must be at least 1"); one that does not is added at
// prefix.
func addKeyed(ps *config.Problems, prefix string, err error) {
	if err == nil {
		return
	}
	errs := []error{err}
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		errs = joined.Unwrap()
	}
	for _, e := range errs {
		key, msg, ok := strings.Cut(e.Error(), ": ")
		if ok && key != "" && !strings.ContainsAny(key, " \t") {
			ps.Add(prefix+"."+key, "%s", msg)
		} else {
			ps.Add(prefix, "%v", e)
		}
	}
}

// demoAddr is where the demo server listens.
type demoAddr struct {
	host string
	port int
}

// source returns the IMAP source's configuration: Mailbox with the
// application's kind and queue, and, with the demo enabled, the embedded
// server's address and account.
func (c Config) source(demo demoAddr) imap.Config {
	ic := imap.Config(c.Mailbox)
	ic.Kind, ic.Queue = Kind, c.Queue
	if c.Demo.Enabled {
		ic.Host, ic.Port, ic.TLS = demo.host, demo.port, imap.TLSNone
		ic.Username, ic.Password = c.Demo.Username, c.Demo.Password
	}
	return ic.WithDefaults()
}
