package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/source"
)

// session runs one connection until it fails or ctx ends. progressed
// reports whether the mailbox was selected (which resets the back-off).
func (s *Source) session(ctx context.Context, emit source.Emitter) (progressed bool, err error) {
	handler := &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				s.signal()
			}
		},
	}
	iw := newIdleWatch()
	c, m, err := dial(ctx, s.cfg, handler, iw)
	if err != nil {
		return false, err
	}
	defer c.Close()
	s.conn = m
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()

	w := s.guard(c)
	m.arm("SELECT", s.cfg.answerBudget())
	sel, err := selectWait(c, s.cfg.Mailbox, nil)
	if err = m.done(w.done(err)); err != nil {
		if permanentSelect(err) {
			return false, fatal{fmt.Errorf("%w %q: %w", ErrMailbox, s.cfg.Mailbox, err)}
		}
		return false, fmt.Errorf("imap: select %q: %w", s.cfg.Mailbox, err)
	}
	s.selected(sel.UIDValidity)
	s.sessionBegins()

	idle := s.cfg.Mode == ModeIdle && c.Caps().Has(imap.CapIdle)
	mode := ModePoll
	if idle {
		mode = ModeIdle
	} else if s.cfg.Mode == ModeIdle {
		s.log.Info("server does not support IDLE, polling instead", zap.Duration("interval", s.cfg.PollInterval))
	}
	s.setMode(mode)
	s.log.Info("imap connected", zap.Uint32("uidvalidity", sel.UIDValidity), zap.Uint32("messages", sel.NumMessages), zap.String("mode", string(mode)))

	var idleAgain time.Time // IDLE refused: when to try it again
	refusals := 0
	for {
		if err := s.scan(ctx, c, emit); err != nil {
			return true, err
		}
		if !idle && !idleAgain.IsZero() && !time.Now().Before(idleAgain) {
			idle = true // a refusal may pass (NO [LIMIT]: too many idling connections)
		}
		if idle {
			err = s.idleOnce(ctx, c, iw)
			if errors.Is(err, errIdleRefused) {
				// The connection is fine; polling on it beats a new
				// login every Reconnect.Max. IDLE is tried again on it
				// at the first poll once Reconcile has passed (the
				// refusal may be temporary), and by the next session.
				refusals++
				log := s.log.Warn
				if refusals > 1 {
					log = s.log.Debug
				}
				log("the server refuses IDLE: polling instead on this connection, trying IDLE again later",
					zap.Error(err), zap.Duration("interval", s.cfg.PollInterval), zap.Duration("idle_again_in", s.cfg.Reconcile),
					zap.Int("refusals", refusals))
				idle = false
				idleAgain = time.Now().Add(s.cfg.Reconcile)
				s.setMode(ModePoll)
				err = s.pollWait(ctx, c)
			}
		} else {
			err = s.pollWait(ctx, c)
		}
		if err != nil {
			return true, err
		}
	}
}

// errIdleRefused: the server answered the IDLE command with a NO or a
// BAD (it announced IDLE, but refuses it now, or to this client). The
// session polls instead, and tries IDLE again at the first poll once
// Reconcile has passed.
var errIdleRefused = errors.New("imap: the server refused IDLE")

// dial connects, secures the connection per cfg.TLS and logs in, all
// bounded by cfg.DialTimeout and ctx. A non-nil iw watches the
// conversation for an IDLE the server ends (see idleWatch). It returns
// the client and its connection's meter, which bounds what a command's
// answer may make it read (see meter).
func dial(ctx context.Context, cfg Config, handler *imapclient.UnilateralDataHandler, iw *idleWatch) (*imapclient.Client, *meter, error) {
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(dctx, "tcp", cfg.addr())
	if err != nil {
		return nil, nil, fmt.Errorf("imap: dial %s: %w", cfg.addr(), err)
	}
	// The meter counts the bytes read off the wire (encrypted ones under
	// TLS: a little more than the answer's own), the greeting and the
	// login's answers within answerBudget.
	conn := newMeter(raw, cfg.answerBudget())
	// Closing the raw connection unblocks every step below when dctx ends.
	stop := context.AfterFunc(dctx, func() { _ = conn.Close() })
	tlsCfg := &tls.Config{ServerName: strings.Trim(cfg.Host, "[]"), InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in for tests
	opts := &imapclient.Options{UnilateralDataHandler: handler, TLSConfig: tlsCfg}
	if iw != nil {
		opts.DebugWriter = iw
	}

	fail := func(step string, err error) (*imapclient.Client, *meter, error) {
		stop()
		err = conn.done(err)
		_ = conn.Close()
		if dctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w (dial timeout %s)", err, cfg.DialTimeout)
		}
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			return nil, nil, fatal{fmt.Errorf("imap: %s %s: %w", step, cfg.addr(), err)}
		}
		return nil, nil, fmt.Errorf("imap: %s %s: %w", step, cfg.addr(), err)
	}

	var c *imapclient.Client
	switch cfg.TLS {
	case TLSImplicit:
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			return fail("tls handshake", err)
		}
		c = imapclient.New(tc, opts)
	case TLSStartTLS:
		c, err = imapclient.NewStartTLS(conn, opts)
		if err != nil {
			return fail("starttls", err)
		}
	default:
		c = imapclient.New(conn, opts)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return fail("greeting", err)
	}
	if err := c.Login(cfg.Username, cfg.Password).Wait(); err != nil {
		c.Close()
		if permanentLogin(err) && conn.done(nil) == nil {
			stop()
			return nil, nil, fatal{fmt.Errorf("%w: %s as %q: %w", ErrAuth, cfg.addr(), cfg.Username, err)}
		}
		return fail("login", err)
	}
	if !stop() {
		c.Close()
		return fail("login", dctx.Err())
	}
	if err := conn.done(nil); err != nil {
		c.Close()
		return fail("login", err)
	}
	return c, conn, nil
}

// selected records the mailbox's UIDVALIDITY after a SELECT. A change
// means every UID known so far is void: the cursor restarts at 0 and the
// next scan finds, by criteria, every message not yet processed; the
// in-flight set is keyed by task key, not UID, so it still keeps what is
// in flight from being emitted twice.
func (s *Source) selected(validity uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.uidValidity != 0 && s.uidValidity != validity {
		s.log.Warn("UIDVALIDITY changed: rescanning the mailbox",
			zap.Uint32("old", s.uidValidity), zap.Uint32("new", validity), zap.Uint32("last_uid", uint32(s.lastUID)))
		s.lastUID = 0
		s.rescan = 0
		clear(s.refusedAlone)
		clear(s.suspects)
		clear(s.controlFailures)
		clear(s.aside)
		clear(s.finished)
		clear(s.counted)
		s.st.UIDValidityChanges++
	}
	s.uidValidity = validity
	s.st.UIDValidity = validity
	s.st.LastUID = uint32(s.lastUID)
	s.st.Connected = true
	s.st.LastError = "" // reconnected: the last session's error is over
}

func (s *Source) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// idleOnce idles until the server reports new mail, the watchdog interval
// (min(Reconcile, IdleRenew)) passes, ctx ends or the connection drops.
// Starting and ending the IDLE are bounded by CommandTimeout; the wait in
// between is not. An IDLE the server ends on its own (iw) ends the
// session with ErrIdleEnded: Run starts over with its back-off. One it
// refuses (a NO or BAD to the IDLE command) returns errIdleRefused: the
// session polls instead.
func (s *Source) idleOnce(ctx context.Context, c *imapclient.Client, iw *idleWatch) (err error) {
	select {
	case <-s.wake: // mail arrived during the last scan
		return nil
	default:
	}
	// What the server sends from IDLE to the answer to DONE (new mail,
	// flags changed, expunges) is bounded as one answer (see meter).
	s.conn.arm("IDLE", s.cfg.mailboxBudget(c))
	defer func() {
		if tooLarge := s.conn.done(nil); tooLarge != nil {
			err = fmt.Errorf("imap: idle: %w", tooLarge)
		}
	}()
	iw.arm() // before IDLE is sent: the server may end it at once
	defer iw.disarm()
	w := s.guard(c)
	var cmd *imapclient.IdleCommand
	cmd, err = c.Idle()
	var ie *imap.Error
	if errors.As(err, &ie) && !w.fired.Load() {
		_ = w.done(nil)
		return fmt.Errorf("%w: %w", errIdleRefused, err)
	}
	if err = w.done(err); err != nil {
		return fmt.Errorf("imap: idle: %w", err)
	}
	s.setMode(ModeIdle) // again, after a refusal
	began := time.Now()
	t := time.NewTimer(min(s.cfg.Reconcile, s.cfg.IdleRenew))
	defer t.Stop()
	why, ended := "new mail", false
	select {
	case <-s.wake:
	case <-t.C:
		why = "watchdog"
	case <-ctx.Done():
		why = "stop"
	case <-c.Closed():
		why = "connection closed"
	case <-iw.ended:
		ended = true
	}
	iw.disarm()
	if !ended { // the server may have ended it as something else happened
		select {
		case <-iw.ended:
			ended = true
		default:
		}
	}
	if ended {
		// No DONE: the session's deferred Close drops the connection.
		// The error's text is the same each time, so that Run backs off
		// from a server that ends every IDLE at once.
		s.log.Debug("the server ended IDLE on its own; starting over", zap.String("status", iw.reason()),
			zap.Duration("after", time.Since(began)))
		return fmt.Errorf("%w (%s)", ErrIdleEnded, iw.reason())
	}
	s.log.Debug("idle ended", zap.String("why", why))
	w = s.guard(c)
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("imap: end idle: %w", w.done(err))
	}
	if err := w.done(cmd.Wait()); err != nil {
		return fmt.Errorf("imap: idle: %w", err)
	}
	return ctx.Err()
}

// setMode records the session's mode in Status.
func (s *Source) setMode(m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Mode = m
}

// pollWait sleeps PollInterval ±10%.
func (s *Source) pollWait(ctx context.Context, c *imapclient.Client) error {
	d := s.cfg.PollInterval
	d += time.Duration((rand.Float64()*0.2 - 0.1) * float64(d))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.Closed():
		return s.conn.done(errors.New("imap: connection closed by server")) // or by the meter
	case <-t.C:
		return nil
	}
}
