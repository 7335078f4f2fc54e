package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/plba/plba/internal/dirlock"
)

// Sync modes for Config.Sync.
const (
	// SyncInterval flushes the file store to disk every Config.SyncInterval.
	SyncInterval = "interval"
	// SyncAlways flushes every write to disk before acknowledging it.
	SyncAlways = "always"
)

// Defaults applied by Config.WithDefaults.
const (
	DefaultStoreDir     = "./data/nats"
	DefaultServerName   = "plba"
	DefaultMaxPayload   = 8 << 20
	DefaultReadyTimeout = 10 * time.Second
)

// MinMaxPayload is the smallest MaxPayload Validate accepts (0 is the
// default).
const MinMaxPayload = 64 << 10

// ErrNotReady is returned by Start when the server does not accept
// connections within Config.ReadyTimeout.
var ErrNotReady = errors.New("embedded: nats server not ready")

// ErrStoreInUse is returned by Start when another process (or another
// server in this one) holds the store directory's lock.
var ErrStoreInUse = dirlock.ErrLocked

// ErrStoreUnusable is returned by Start when the store directory cannot
// be used (not a directory, no permission, no space, or JetStream could
// not open it); the error says why.
var ErrStoreUnusable = errors.New("embedded: store dir unusable")

// lockFile is the lock file in the store directory: it holds the pid of
// the process that uses the store.
const lockFile = "plba.lock"

// Config configures the embedded NATS server. The zero value is usable:
// every field documents its default.
type Config struct {
	// StoreDir is the JetStream file store directory. Default ./data/nats.
	StoreDir string `koanf:"store_dir"`
	// Listen is a host:port to accept network clients on; "" (the default)
	// opens no listener and only in-process clients can connect. Use port 0
	// for a random port (see Server.ClientURL).
	Listen string `koanf:"listen"`
	// ServerName names the server (in logs, advisories and cluster
	// membership). Default "plba".
	ServerName string `koanf:"server_name"`
	// MaxMemory limits JetStream memory storage in bytes; 0 lets the server
	// choose (75% of RAM).
	MaxMemory int64 `koanf:"max_memory"`
	// MaxStore limits JetStream file storage in bytes; 0 lets the server
	// choose (1 TB or 75% of the disk).
	MaxStore int64 `koanf:"max_store"`
	// MaxPayload is the largest message in bytes. Default 8 MiB; 64 KiB
	// to 64 MiB.
	MaxPayload int32 `koanf:"max_payload"`
	// Sync is "interval" (default) or "always"; see the package doc.
	Sync string `koanf:"sync"`
	// SyncInterval is the flush interval for Sync "interval"; 0 keeps the
	// server's default (2 minutes).
	SyncInterval time.Duration `koanf:"sync_interval"`
	// ReadyTimeout bounds how long Start waits for the server. Default 10s.
	ReadyTimeout time.Duration `koanf:"ready_timeout"`
	// Debug enables the server's debug log lines (at zap debug level).
	Debug bool `koanf:"debug"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.StoreDir == "" {
		c.StoreDir = DefaultStoreDir
	}
	if c.ServerName == "" {
		c.ServerName = DefaultServerName
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.Sync == "" {
		c.Sync = SyncInterval
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	return c
}

// Validate reports every invalid field of c (after defaults), each as
// "key: problem" (a configuration reports it at that key), joined into
// one error.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	switch c.Sync {
	case SyncInterval, SyncAlways:
	default:
		errs = append(errs, fmt.Errorf("sync: %q: want %q or %q", c.Sync, SyncInterval, SyncAlways))
	}
	if c.SyncInterval < 0 {
		errs = append(errs, fmt.Errorf("sync_interval: %s must not be negative", c.SyncInterval))
	}
	if c.Sync == SyncAlways && c.SyncInterval != 0 {
		errs = append(errs, errors.New("sync_interval: only applies to sync \"interval\""))
	}
	if c.MaxPayload != 0 && c.MaxPayload < MinMaxPayload || c.MaxPayload > 64<<20 {
		// Below 64 KiB a task's headers and its dead letter's leave
		// little room: every task of a mail-sized payload is refused.
		errs = append(errs, fmt.Errorf("max_payload: %d out of range (64KiB..64MiB)", c.MaxPayload))
	}
	if c.MaxMemory < 0 {
		errs = append(errs, fmt.Errorf("max_memory: %d must not be negative", c.MaxMemory))
	}
	if c.MaxStore < 0 {
		errs = append(errs, fmt.Errorf("max_store: %d must not be negative", c.MaxStore))
	}
	if c.ReadyTimeout < 0 {
		errs = append(errs, fmt.Errorf("ready_timeout: %s must not be negative", c.ReadyTimeout))
	}
	if c.Listen != "" {
		if _, _, err := listenHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen: %w", err))
		}
	}
	return errors.Join(errs...)
}

func listenHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// Options returns the nats-server options Start uses for c, for callers that
// need to adjust them (for example to add cluster routes in tests) and pass
// them to StartWithOptions.
func (c Config) Options() (*server.Options, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	c = c.WithDefaults()
	dir, err := filepath.Abs(c.StoreDir)
	if err != nil {
		return nil, fmt.Errorf("embedded: store dir %q: %w", c.StoreDir, err)
	}
	o := &server.Options{
		ServerName:         c.ServerName,
		JetStream:          true,
		StoreDir:           dir,
		JetStreamMaxMemory: c.MaxMemory,
		JetStreamMaxStore:  c.MaxStore,
		MaxPayload:         c.MaxPayload,
		SyncAlways:         c.Sync == SyncAlways,
		SyncInterval:       c.SyncInterval,
		NoSigs:             true,
		DontListen:         c.Listen == "",
		Debug:              c.Debug,
	}
	if c.MaxMemory == 0 {
		o.JetStreamMaxMemory = -1
	}
	if c.MaxStore == 0 {
		o.JetStreamMaxStore = -1
	}
	if c.Listen != "" {
		o.Host, o.Port, _ = listenHostPort(c.Listen)
	}
	return o, nil
}

// stopping maps the store directory of every server of this process that
// is shutting down to a channel closed when it is down and its lock
// released.
var stopping sync.Map

// Server is a running embedded NATS server.
type Server struct {
	srv  *server.Server
	lock *dirlock.Lock
	dir  string

	once    sync.Once
	stopped chan struct{} // closed when the server is down and the lock released
}

// Start starts a NATS server with JetStream from cfg and waits until it
// accepts connections (bounded by ctx and cfg.ReadyTimeout). The caller must
// call Shutdown. log may be nil.
func Start(ctx context.Context, cfg Config, log *zap.Logger) (*Server, error) {
	opts, err := cfg.Options()
	if err != nil {
		return nil, err
	}
	return StartWithOptions(ctx, opts, cfg.WithDefaults().ReadyTimeout, log)
}

// StartWithOptions starts a NATS server from raw options (see
// Config.Options) and waits up to readyTimeout (or ctx) until it accepts
// connections.
func StartWithOptions(ctx context.Context, opts *server.Options, readyTimeout time.Duration, log *zap.Logger) (*Server, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if readyTimeout <= 0 {
		readyTimeout = DefaultReadyTimeout
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < readyTimeout {
		readyTimeout = time.Until(d)
	}
	lock, err := lockStore(ctx, opts.StoreDir)
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		_ = lock.Release()
		return nil, fmt.Errorf("embedded: new nats server: %w", err)
	}
	fatal := make(chan string, 1)
	ns.SetLoggerV2(zapLogger{l: log.Named("nats-server").WithOptions(zap.AddCallerSkip(1)).Sugar(), fatal: fatal}, opts.Debug, false, false)
	ns.Start()
	down := func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		_ = lock.Release()
	}
	// Wait for the server, but not for a server that already gave up: a
	// JetStream that cannot open its store logs a fatal error and never
	// becomes ready.
	deadline := time.Now().Add(readyTimeout)
	for !ns.ReadyForConnections(50 * time.Millisecond) {
		select {
		case msg := <-fatal:
			down()
			return nil, fmt.Errorf("embedded: store dir %s: %s: %w", opts.StoreDir, msg, ErrStoreUnusable)
		default:
		}
		if err := ctx.Err(); err != nil {
			down()
			return nil, fmt.Errorf("embedded: start nats server: %w", err)
		}
		if time.Now().After(deadline) {
			down()
			return nil, fmt.Errorf("embedded: start nats server within %s: %w", readyTimeout, ErrNotReady)
		}
	}
	if !ns.JetStreamEnabled() && opts.Cluster.Port == 0 {
		cause := "jetstream did not start"
		select {
		case msg := <-fatal:
			cause = msg
		default:
		}
		down()
		return nil, fmt.Errorf("embedded: store dir %s: %s: %w", opts.StoreDir, cause, ErrStoreUnusable)
	}
	log.Info("embedded nats server started", zap.String("name", opts.ServerName),
		zap.String("store_dir", opts.StoreDir), zap.Bool("listening", !opts.DontListen))
	return &Server{srv: ns, lock: lock, dir: opts.StoreDir, stopped: make(chan struct{})}, nil
}

// lockStore makes sure dir is a usable directory and takes its lock: one
// server per store, across processes. A second server on the same store
// would corrupt it (both write the same message blocks).
//
// A server of this process that is still shutting down on dir (its
// Shutdown's context ended first) is waited for, within ctx: it is going
// away, and the store is free once it is down.
func lockStore(ctx context.Context, dir string) (*dirlock.Lock, error) {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("embedded: store dir %s: not a directory: %w", dir, ErrStoreUnusable)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded: store dir %s: %w: %w", dir, err, ErrStoreUnusable)
	}
	if down, ok := stopping.Load(dir); ok {
		select {
		case <-down.(chan struct{}):
		case <-ctx.Done():
			return nil, fmt.Errorf("embedded: store dir %s: waiting for this process's previous server to shut down: %w", dir, ctx.Err())
		}
	}
	lock, err := dirlock.Acquire(filepath.Join(dir, lockFile))
	if errors.Is(err, dirlock.ErrLocked) {
		return nil, fmt.Errorf("embedded: store dir %s: %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: store dir %s: %w: %w", dir, err, ErrStoreUnusable)
	}
	return lock, nil
}

// NATS returns the underlying nats-server, for tests and diagnostics.
func (s *Server) NATS() *server.Server { return s.srv }

// ClientOptions returns the nats.go options that connect a client to this
// server in process (no network listener needed).
func (s *Server) ClientOptions() []nats.Option {
	return []nats.Option{nats.InProcessServer(s.srv)}
}

// ClientURL returns the URL network clients connect to, or "" when the
// server does not listen.
func (s *Server) ClientURL() string {
	if s.srv.Addr() == nil {
		return ""
	}
	return s.srv.ClientURL()
}

// Shutdown stops the server and waits until it is down or ctx ends. It is
// safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		stopping.Store(s.dir, s.stopped)
		go func() {
			s.srv.Shutdown()
			s.srv.WaitForShutdown()
			_ = s.lock.Release() // the store is free only once the server is down
			stopping.CompareAndDelete(s.dir, s.stopped)
			close(s.stopped)
		}()
	})
	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("embedded: shutdown nats server: %w", ctx.Err())
	}
}

// zapLogger adapts zap to the nats-server Logger interface. The first
// fatal message also goes to fatal (when set), for Start.
type zapLogger struct {
	l     *zap.SugaredLogger
	fatal chan string
}

// Noticef logs at debug: the server's notices are its start-up banner and
// routine events, which would bury the host's own lines at info; the
// backend logs what matters (started, disconnected, reconnected) itself.
func (z zapLogger) Noticef(format string, v ...any) { z.l.Debugf(format, v...) }
func (z zapLogger) Warnf(format string, v ...any)   { z.l.Warnf(format, v...) }
func (z zapLogger) Fatalf(format string, v ...any) {
	z.l.Errorf(format, v...)
	if z.fatal != nil {
		select {
		case z.fatal <- fmt.Sprintf(format, v...):
		default:
		}
	}
}
func (z zapLogger) Errorf(format string, v ...any) { z.l.Errorf(format, v...) }
func (z zapLogger) Debugf(format string, v ...any) { z.l.Debugf(format, v...) }
func (z zapLogger) Tracef(format string, v ...any) { z.l.Debugf(format, v...) }
