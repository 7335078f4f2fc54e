package memserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"go.uber.org/zap"
)

// ErrInvalidOptions is returned by Start when Options are incomplete or
// unsafe.
var ErrInvalidOptions = errors.New("memserver: invalid options")

// Options configure Start.
type Options struct {
	// Listen is the TCP address to listen on. Default "127.0.0.1:0" (a free
	// loopback port; read it back with Server.Addr).
	Listen string
	// Username and Password are the one account's credentials. Required.
	Username string
	Password string
	// Mailbox is created at start. Default "INBOX".
	Mailbox string
	// Mailboxes are further mailboxes created at start (for example
	// "Processed"); the source creates missing ones itself.
	Mailboxes []string
	// Caps are the capabilities the server advertises. Default IMAP4rev2
	// (which implies IDLE, MOVE, UIDPLUS, ESEARCH, ...) plus IMAP4rev1.
	// Use imap.CapSet{imap.CapIMAP4rev1: {}} for a plain IMAP4rev1 server
	// without MOVE.
	Caps imap.CapSet
	// TLSConfig, when set, makes the listener use implicit TLS (or, with
	// StartTLS, offers STARTTLS on a plain listener).
	TLSConfig *tls.Config
	// StartTLS offers TLSConfig through STARTTLS instead of implicit TLS.
	StartTLS bool
	// AllowInsecure permits a non-loopback listen address without TLS.
	AllowInsecure bool
	// Logger receives the server's error messages. Nil discards them.
	Logger *zap.Logger
}

// Server is a running in-memory IMAP server. Its methods are safe for
// concurrent use.
type Server struct {
	opts Options
	ln   net.Listener
	srv  *imapserver.Server
	user *imapmemserver.User
	done chan struct{}
	// serving is closed at Serve's first Accept (serveOnce): Serve has
	// registered the listener and its wait group by then.
	serving   chan struct{}
	serveOnce sync.Once
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	once      sync.Once
	err       error
	idle      idlers
}

// idlers counts the sessions in IDLE.
type idlers struct {
	mu        sync.Mutex
	now, most int
}

func (i *idlers) add(d int) {
	i.mu.Lock()
	i.now += d
	i.most = max(i.most, i.now)
	i.mu.Unlock()
}

// Idlers returns how many sessions are in IDLE now, and the most that
// ever were at once: a client that watches the mailbox idles, one that
// only moves messages does not, so "most" tells whether two watchers
// ever overlapped.
func (s *Server) Idlers() (now, most int) {
	s.idle.mu.Lock()
	defer s.idle.mu.Unlock()
	return s.idle.now, s.idle.most
}

// Message is one stored message as seen by Messages.
type Message struct {
	UID       imap.UID
	Flags     []imap.Flag
	MessageID string
	Size      int64
	Raw       []byte
}

// HasFlag reports whether m carries flag (case-insensitive).
func (m Message) HasFlag(flag imap.Flag) bool {
	for _, f := range m.Flags {
		if strings.EqualFold(string(f), string(flag)) {
			return true
		}
	}
	return false
}

type printfLogger struct{ l *zap.SugaredLogger }

func (p printfLogger) Printf(format string, args ...any) { p.l.Debugf(format, args...) }

// Start listens on opts.Listen and serves IMAP until Close. ctx bounds the
// start only.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Username == "" || opts.Password == "" {
		return nil, fmt.Errorf("%w: username and password are required", ErrInvalidOptions)
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Mailbox == "" {
		opts.Mailbox = "INBOX"
	}
	if opts.Caps == nil {
		opts.Caps = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}}
	}
	if opts.TLSConfig == nil && !opts.AllowInsecure && !loopbackAddr(opts.Listen) {
		return nil, fmt.Errorf("%w: listen %q: plain IMAP only on loopback unless AllowInsecure", ErrInvalidOptions, opts.Listen)
	}
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}

	s := &Server{opts: opts, done: make(chan struct{}), serving: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	s.user = imapmemserver.NewUser(opts.Username, opts.Password)
	for _, name := range append([]string{opts.Mailbox}, opts.Mailboxes...) {
		if err := s.user.Create(name, nil); err != nil {
			return nil, fmt.Errorf("memserver: create mailbox %q: %w", name, err)
		}
	}
	so := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &session{user: s.user, idle: &s.idle}, nil, nil
		},
		Caps:         opts.Caps,
		Logger:       printfLogger{logger.Sugar()},
		InsecureAuth: true,
	}
	if opts.StartTLS {
		so.TLSConfig = opts.TLSConfig
	}
	s.srv = imapserver.New(so)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("memserver: listen %q: %w", opts.Listen, err)
	}
	if opts.TLSConfig != nil && !opts.StartTLS {
		ln = tls.NewListener(ln, opts.TLSConfig)
	}
	s.ln = &trackingListener{Listener: ln, s: s}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(s.ln)
	}()
	return s, nil
}

func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Addr is the address the server listens on ("127.0.0.1:54321").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Host is the host part of Addr.
func (s *Server) Host() string {
	h, _, _ := net.SplitHostPort(s.Addr())
	return h
}

// Port is the port part of Addr.
func (s *Server) Port() int {
	return s.ln.Addr().(*net.TCPAddr).Port
}

type literal struct {
	*bytes.Reader
}

func (l literal) Size() int64 { return int64(l.Len()) }

// Append stores raw (an RFC 5322 message) in mailbox with flags and returns
// its UID. Clients idling on the mailbox are told at once.
func (s *Server) Append(mailbox string, raw []byte, flags ...imap.Flag) (imap.UID, error) {
	data, err := s.user.Append(mailbox, literal{bytes.NewReader(raw)}, &imap.AppendOptions{Flags: flags})
	if err != nil {
		return 0, fmt.Errorf("memserver: append to %q: %w", mailbox, err)
	}
	return data.UID, nil
}

// CreateMailbox creates a mailbox; it is an error if it exists.
func (s *Server) CreateMailbox(name string) error {
	if err := s.user.Create(name, nil); err != nil {
		return fmt.Errorf("memserver: create mailbox %q: %w", name, err)
	}
	return nil
}

// RecreateMailbox deletes mailbox and creates it again empty, which gives
// it a new UIDVALIDITY (as a server does after a mailbox rebuild). Clients
// that have it selected keep seeing the old one until they select again:
// combine with DropConnections.
func (s *Server) RecreateMailbox(name string) error {
	if err := s.user.Delete(name); err != nil {
		return fmt.Errorf("memserver: delete mailbox %q: %w", name, err)
	}
	return s.CreateMailbox(name)
}

// UIDValidity returns the mailbox's current UIDVALIDITY.
func (s *Server) UIDValidity(mailbox string) (uint32, error) {
	data, err := s.user.Status(mailbox, &imap.StatusOptions{UIDValidity: true})
	if err != nil {
		return 0, fmt.Errorf("memserver: status %q: %w", mailbox, err)
	}
	return data.UIDValidity, nil
}

// Mailboxes lists the names of all mailboxes, sorted.
func (s *Server) Mailboxes(ctx context.Context) ([]string, error) {
	c, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, fmt.Errorf("memserver: list: %w", err)
	}
	names := make([]string, 0, len(list))
	for _, l := range list {
		names = append(names, l.Mailbox)
	}
	sort.Strings(names)
	return names, nil
}

// Messages returns every message of mailbox with its flags, in UID order.
// It reads through a client connection (EXAMINE, BODY.PEEK[]), so it
// changes nothing. A missing mailbox yields an error.
func (s *Server) Messages(ctx context.Context, mailbox string) ([]Message, error) {
	c, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("memserver: examine %q: %w", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	body := &imap.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{body},
	}).Collect()
	if err != nil {
		return nil, fmt.Errorf("memserver: fetch %q: %w", mailbox, err)
	}
	out := make([]Message, 0, len(bufs))
	for _, b := range bufs {
		m := Message{UID: b.UID, Flags: b.Flags, Size: b.RFC822Size, Raw: b.FindBodySection(body)}
		if b.Envelope != nil {
			m.MessageID = b.Envelope.MessageID
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out, nil
}

func (s *Server) client(ctx context.Context) (*imapclient.Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr())
	if err != nil {
		return nil, fmt.Errorf("memserver: dial: %w", err)
	}
	if s.opts.TLSConfig != nil && !s.opts.StartTLS {
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // our own loopback server
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("memserver: tls: %w", err)
		}
		conn = tc
	}
	c := imapclient.New(conn, nil)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	if err := c.Login(s.opts.Username, s.opts.Password).Wait(); err != nil {
		stop()
		c.Close()
		return nil, fmt.Errorf("memserver: login: %w", err)
	}
	stop()
	return c, nil
}

// DropConnections closes every client connection at once, as a server
// restart or a network cut would. The listener keeps accepting.
func (s *Server) DropConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.conns)
	for c := range s.conns {
		_ = c.Close()
		delete(s.conns, c)
	}
	return n
}

// Close stops the listener and every connection and waits for the accept
// loop to end. It is idempotent.
func (s *Server) Close() error {
	s.once.Do(func() {
		// imapserver.Server.Close waits for Serve's wait group, which
		// Serve adds to after it registered the listener: a Close right
		// after Start raced that Add (the race detector's "WaitGroup Add
		// concurrent with Wait"). Wait for Serve to accept, or to end.
		select {
		case <-s.serving:
		case <-s.done:
		}
		s.err = s.srv.Close()
		// imapserver.Server.Close only closes listeners Serve has already
		// registered: a Close racing the Serve goroutine's start would
		// leave ours accepting (and Serve returning at once). Close it
		// ourselves; closing twice is harmless.
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) && s.err == nil {
			s.err = err
		}
		<-s.done
		s.DropConnections()
	})
	return s.err
}

type trackingListener struct {
	net.Listener
	s *Server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	l.s.serveOnce.Do(func() { close(l.s.serving) })
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	l.s.conns[c] = struct{}{}
	l.s.mu.Unlock()
	return &trackedConn{Conn: c, s: l.s}, nil
}

type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c.Conn)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}
