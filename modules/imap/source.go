package imap

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// Headers set on every task the source emits.
const (
	// HeaderUID is the message's IMAP UID (decimal).
	HeaderUID = "imap-uid"
	// HeaderUIDValidity is the mailbox UIDVALIDITY the UID belongs to.
	HeaderUIDValidity = "imap-uidvalidity"
	// HeaderMailbox is the mailbox the message was found in.
	HeaderMailbox = "imap-mailbox"
	// HeaderMessageID is the Message-ID without angle brackets ("" when the
	// message has none).
	HeaderMessageID = "message-id"
	// HeaderSize is the message size in bytes (decimal).
	HeaderSize = "imap-size"
	// HeaderInternalDate is the server's arrival time (RFC 3339).
	HeaderInternalDate = "imap-internal-date"
)

// Errors callers branch on.
var (
	// ErrAuth: the server refused the credentials (NO [AUTHENTICATIONFAILED],
	// NO [AUTHORIZATIONFAILED] or a NO without a response code). Run returns
	// it (wrapped) instead of retrying: retrying cannot fix a wrong
	// password. Other refusals of LOGIN ([UNAVAILABLE], [INUSE],
	// throttling) are retried with back-off.
	ErrAuth = errors.New("imap: authentication failed")
	// ErrMailbox: the configured mailbox does not exist (NO [NONEXISTENT]
	// or a NO without a response code to SELECT). Run returns it (wrapped);
	// other refusals of SELECT are retried with back-off.
	ErrMailbox = errors.New("imap: cannot select mailbox")
	// ErrEmit: the runtime refused tasks. Run returns it (wrapped): the
	// supervisor decides; nothing was lost, the messages are found again.
	ErrEmit = errors.New("imap: emit failed")
	// ErrAlreadyRunning: Run was called while another Run is active.
	ErrAlreadyRunning = errors.New("imap: source already running")
	// ErrClosed: Complete was called after Close.
	ErrClosed = errors.New("imap: source closed")
	// ErrNotReady is wrapped by Check when the source is not connected or
	// its last successful search is too old.
	ErrNotReady = errors.New("imap: not ready")
)

// RefusedSessionsBeforeSetAside is how many consecutive sessions the
// server must refuse a message alone (it was asked for that message and
// the others of its batch one by one, and returned none) before the
// message is set aside. A refusal of only some messages of a batch is
// specific to them: those are set aside at once. A refusal of all of them
// may as well be the server failing as a whole (NO [SERVERBUG] for a
// moment), so the session fails instead and Run retries it with back-off;
// only a message still refused alone after this many sessions, and over
// at least Reconnect.Max since its first refusal, is set aside, so that a
// message the server can never return does not block the mailbox
// forever while a server failing for a while only delays mail.
const RefusedSessionsBeforeSetAside = 3

// fatal marks an error Run must return instead of retrying.
type fatal struct{ err error }

func (f fatal) Error() string { return f.err.Error() }
func (f fatal) Unwrap() error { return f.err }

// Source is an IMAP mailbox as a task source: it emits one task per
// message (payload: the raw RFC 5322 bytes) and, as a source.Completer,
// flags or moves the message once its task is done. Create it with
// NewSource; Run it under the runtime's supervisor; Close it after the
// worker pools have drained.
type Source struct {
	cfg  Config
	log  *zap.Logger
	wake chan struct{}
	now  func() time.Time // time.Now; tests move it

	running atomic.Bool

	mu          sync.Mutex
	uidValidity uint32
	lastUID     imap.UID
	inflight    map[string]emitted // task key -> what was emitted, when
	// dupes are further copies of in-flight messages (same task key,
	// other UID) that were not emitted: the completion of the key's task
	// settles them too, since the cursor has moved past them.
	dupes map[string]dupe
	// rescan is the lowest UID (under uidValidity) that the next scan
	// must see again although the cursor has passed it (0: none): a copy
	// its original's completion could not settle. Set by Complete, which
	// runs beside the scan, and applied when the next scan starts.
	rescan imap.UID
	// refusedAlone counts, per UID under uidValidity, the consecutive
	// sessions in which the server refused the message alone (see
	// RefusedSessionsBeforeSetAside). An entry is dropped when the
	// message's body is fetched fine or the message is set aside, and
	// all of them when UIDVALIDITY changes.
	refusedAlone map[imap.UID]refusedAlone
	st           Status
	emitting     bool

	comp completer
}

var (
	_ source.Source    = (*Source)(nil)
	_ source.Completer = (*Source)(nil)
)

// NewSource validates cfg (after WithDefaults) and returns a source that
// is not connected yet. A nil logger discards logs.
func NewSource(cfg Config, log *zap.Logger) (*Source, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Source{
		cfg:          cfg,
		log:          log.With(zap.String("source", cfg.Name), zap.String("mailbox", cfg.Mailbox)),
		wake:         make(chan struct{}, 1),
		inflight:     map[string]emitted{},
		dupes:        map[string]dupe{},
		refusedAlone: map[imap.UID]refusedAlone{},
		now:          time.Now,
	}
	s.st.Name = cfg.Name
	s.st.Mailbox = cfg.Mailbox
	s.st.Mode = cfg.Mode
	s.comp.init()
	return s, nil
}

// Name is the source name (Config.Name).
func (s *Source) Name() string { return s.cfg.Name }

// Config returns the effective configuration (defaults applied).
func (s *Source) Config() Config { return s.cfg }

// Run connects, selects the mailbox and emits every message not yet
// emitted, then watches for new mail (IDLE or polling) until ctx ends,
// when it returns nil. Lost connections, commands the server does not
// answer within Config.CommandTimeout and temporary refusals are retried
// inside Run with exponential back-off (Config.Reconnect), so a flaky
// server does not crash-loop the supervisor; a session that selected the
// mailbox resets the back-off unless it failed exactly as the one before
// within Reconnect.Max. A FETCH the server refuses for every message it
// is asked for (none returned, as when the server fails as a whole) ends
// the session too and is retried so: nothing is skipped. A message is set
// aside (see Status.Refused) only when the server returns others of its
// batch, or once it has been refused alone in
// RefusedSessionsBeforeSetAside consecutive sessions. Run returns an
// error only for what a retry cannot fix: refused credentials (ErrAuth),
// a mailbox that does not exist (ErrMailbox), a certificate that does not
// verify, or an Emit failure other than ctx ending (ErrEmit). Only one
// Run may be active.
func (s *Source) Run(ctx context.Context, emit source.Emitter) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer s.running.Store(false)
	defer s.setConnected(false)

	attempt := 0
	var prev string // the last session's error
	for {
		began := time.Now()
		progressed, err := s.session(ctx, emit)
		if ctx.Err() != nil {
			return nil
		}
		s.setError(err)
		var f fatal
		if errors.As(err, &f) {
			s.log.Error("imap source stopped", zap.Error(err))
			return f.err
		}
		// A session that selected the mailbox resets the back-off, unless
		// it was short and failed exactly as the one before: a command the
		// server refuses every time must not be retried at the initial
		// delay forever.
		msg := fmt.Sprint(err)
		if progressed && (msg != prev || time.Since(began) >= s.cfg.Reconnect.Max) {
			attempt = 0
		}
		prev = msg
		delay := backoff(s.cfg.Reconnect, attempt)
		attempt++
		s.mu.Lock()
		s.st.Reconnects++
		s.mu.Unlock()
		s.log.Warn("imap connection lost, reconnecting", zap.Error(err), zap.Duration("in", delay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// backoff returns the delay before attempt n (0-based): Initial·2ⁿ capped
// at Max, with full jitter over its upper half.
func backoff(b Backoff, n int) time.Duration {
	d := b.Initial
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

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
	c, err := dial(ctx, s.cfg, handler)
	if err != nil {
		return false, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()

	w := s.guard(c)
	sel, err := c.Select(s.cfg.Mailbox, nil).Wait()
	if err = w.done(err); err != nil {
		if permanentSelect(err) {
			return false, fatal{fmt.Errorf("%w %q: %w", ErrMailbox, s.cfg.Mailbox, err)}
		}
		return false, fmt.Errorf("imap: select %q: %w", s.cfg.Mailbox, err)
	}
	s.selected(sel.UIDValidity)

	idle := s.cfg.Mode == ModeIdle && c.Caps().Has(imap.CapIdle)
	mode := ModePoll
	if idle {
		mode = ModeIdle
	} else if s.cfg.Mode == ModeIdle {
		s.log.Info("server does not support IDLE, polling instead", zap.Duration("interval", s.cfg.PollInterval))
	}
	s.mu.Lock()
	s.st.Mode = mode
	s.mu.Unlock()
	s.log.Info("imap connected", zap.Uint32("uidvalidity", sel.UIDValidity), zap.Uint32("messages", sel.NumMessages), zap.String("mode", string(mode)))

	for {
		if err := s.scan(ctx, c, emit); err != nil {
			return true, err
		}
		if idle {
			err = s.idleOnce(ctx, c)
		} else {
			err = s.pollWait(ctx, c)
		}
		if err != nil {
			return true, err
		}
	}
}

// dial connects, secures the connection per cfg.TLS and logs in, all
// bounded by cfg.DialTimeout and ctx.
func dial(ctx context.Context, cfg Config, handler *imapclient.UnilateralDataHandler) (*imapclient.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", cfg.addr())
	if err != nil {
		return nil, fmt.Errorf("imap: dial %s: %w", cfg.addr(), err)
	}
	// Closing the raw connection unblocks every step below when dctx ends.
	stop := context.AfterFunc(dctx, func() { _ = conn.Close() })
	tlsCfg := &tls.Config{ServerName: strings.Trim(cfg.Host, "[]"), InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in for tests
	opts := &imapclient.Options{UnilateralDataHandler: handler, TLSConfig: tlsCfg}

	fail := func(step string, err error) (*imapclient.Client, error) {
		stop()
		_ = conn.Close()
		if dctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w (dial timeout %s)", err, cfg.DialTimeout)
		}
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			return nil, fatal{fmt.Errorf("imap: %s %s: %w", step, cfg.addr(), err)}
		}
		return nil, fmt.Errorf("imap: %s %s: %w", step, cfg.addr(), err)
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
		if permanentLogin(err) {
			stop()
			return nil, fatal{fmt.Errorf("%w: %s as %q: %w", ErrAuth, cfg.addr(), cfg.Username, err)}
		}
		return fail("login", err)
	}
	if !stop() {
		c.Close()
		return fail("login", dctx.Err())
	}
	return c, nil
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
		s.st.UIDValidityChanges++
	}
	s.uidValidity = validity
	s.st.UIDValidity = validity
	s.st.LastUID = uint32(s.lastUID)
	s.st.Connected = true
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
// between is not.
func (s *Source) idleOnce(ctx context.Context, c *imapclient.Client) error {
	select {
	case <-s.wake: // mail arrived during the last scan
		return nil
	default:
	}
	w := s.guard(c)
	cmd, err := c.Idle()
	if err = w.done(err); err != nil {
		return fmt.Errorf("imap: idle: %w", err)
	}
	t := time.NewTimer(min(s.cfg.Reconcile, s.cfg.IdleRenew))
	defer t.Stop()
	why := "new mail"
	select {
	case <-s.wake:
	case <-t.C:
		why = "watchdog"
	case <-ctx.Done():
		why = "stop"
	case <-c.Closed():
		why = "connection closed"
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
		return errors.New("imap: connection closed by server")
	case <-t.C:
		return nil
	}
}

// scan searches for messages above the cursor and emits them in batches.
func (s *Source) scan(ctx context.Context, c *imapclient.Client, emit source.Emitter) error {
	s.reapStale(time.Now())
	s.mu.Lock()
	if s.rescan != 0 && s.rescan <= s.lastUID {
		s.lastUID = s.rescan - 1
		s.st.LastUID = uint32(s.lastUID)
	}
	s.rescan = 0
	last := s.lastUID
	s.mu.Unlock()
	crit := &imap.SearchCriteria{
		UID:     []imap.UIDSet{{{Start: last + 1, Stop: 0}}},
		NotFlag: []imap.Flag{imap.FlagDeleted},
	}
	if *s.cfg.OnSuccess.MoveTo == "" {
		// Processed mail stays in the mailbox, flagged \Seen.
		crit.NotFlag = append(crit.NotFlag, imap.FlagSeen)
	}
	w := s.guard(c)
	data, err := c.UIDSearch(crit, nil).Wait()
	if err = w.done(err); err != nil {
		return fmt.Errorf("imap: uid search: %w", err)
	}
	var uids []imap.UID
	for _, u := range data.AllUIDs() {
		if u > last { // "n:*" matches the highest UID even when it is below n
			uids = append(uids, u)
		}
	}
	slices.Sort(uids)
	for i := 0; i < len(uids); i += s.cfg.BatchSize {
		if err := s.processChunk(ctx, c, emit, uids[i:min(i+s.cfg.BatchSize, len(uids))]); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.st.LastPoll = time.Now()
	s.mu.Unlock()
	return nil
}

// meta is what the first, cheap fetch of a batch learns of a message.
type meta struct {
	uid   imap.UID
	size  int64
	msgID string
	date  time.Time
}

// processChunk fetches the metadata of up to BatchSize UIDs, sets the
// oversized aside, fetches the bodies (BODY.PEEK[]: nothing is flagged) in
// groups bounded by MaxBatchBytes and emits each group. Messages the
// server refuses to return are set aside, or the chunk fails (see
// fetchGroup); the cursor moves past the chunk only when it did not.
func (s *Source) processChunk(ctx context.Context, c *imapclient.Client, emit source.Emitter, uids []imap.UID) error {
	metas, err := s.fetchMeta(c, uids)
	if err != nil {
		return err
	}
	slices.SortFunc(metas, func(a, b meta) int { return cmp.Compare(a.uid, b.uid) })

	var group []meta
	var groupBytes int64
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		err := s.emitGroup(ctx, c, emit, group)
		group, groupBytes = nil, 0
		return err
	}
	for _, m := range metas {
		if m.size > s.cfg.MaxMessageSize {
			if err := s.rejectOversized(c, m); err != nil {
				return err
			}
			continue
		}
		if len(group) > 0 && groupBytes+m.size > s.cfg.MaxBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		group = append(group, m)
		groupBytes += m.size
	}
	if err := flush(); err != nil {
		return err
	}
	s.mu.Lock()
	if hi := uids[len(uids)-1]; hi > s.lastUID {
		s.lastUID = hi
		s.st.LastUID = uint32(hi)
	}
	// Every message of the chunk was emitted, set aside, rejected as
	// oversized or expunged meanwhile: none is refused alone any more.
	for _, u := range uids {
		delete(s.refusedAlone, u)
	}
	s.mu.Unlock()
	return nil
}

// fetchMeta fetches the metadata of uids. When the server refuses the
// lot (see refused), it asks for each message on its own and hands those
// it refuses to settleRefused: set aside when it returned another, else
// the error (the session fails and is retried).
func (s *Source) fetchMeta(c *imapclient.Client, uids []imap.UID) ([]meta, error) {
	metas, err := s.fetchMetaOf(c, uids)
	if !refused(err) {
		return metas, err
	}
	var refs []refusal
	if len(uids) == 1 {
		refs = append(refs, refusal{meta{uid: uids[0]}, err}) // asking again is the same question
	} else {
		metas = nil
		for _, u := range uids {
			m, err := s.fetchMetaOf(c, []imap.UID{u})
			if refused(err) {
				refs = append(refs, refusal{meta{uid: u}, err})
				continue
			}
			if err != nil {
				return nil, err
			}
			metas = append(metas, m...)
		}
	}
	if err := s.settleRefused(refs, len(metas) > 0, "metadata"); err != nil {
		return nil, err
	}
	return metas, nil
}

func (s *Source) fetchMetaOf(c *imapclient.Client, uids []imap.UID) ([]meta, error) {
	w := s.guard(c)
	bufs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
		UID: true, RFC822Size: true, Envelope: true, InternalDate: true,
	}).Collect()
	if err = w.done(err); err != nil {
		return nil, fmt.Errorf("imap: fetch metadata: %w", err)
	}
	metas := make([]meta, 0, len(bufs))
	for _, b := range bufs {
		if b.UID == 0 {
			continue
		}
		m := meta{uid: b.UID, size: b.RFC822Size, date: b.InternalDate}
		if b.Envelope != nil {
			m.msgID = b.Envelope.MessageID
		}
		metas = append(metas, m)
	}
	return metas, nil
}

func (s *Source) emitGroup(ctx context.Context, c *imapclient.Client, emit source.Emitter, group []meta) error {
	bodies, oversize, err := s.fetchGroup(c, group)
	if err != nil {
		return err
	}
	for _, m := range group {
		if size, ok := oversize[m.uid]; ok { // RFC822.SIZE said less
			m.size = size
			if err := s.rejectOversized(c, m); err != nil {
				return err
			}
		}
	}
	// Which message is a copy of which is decided and recorded under one
	// lock with the in-flight set, and the tasks are in flight before
	// Emit (a worker may complete one before Emit returns): a completion
	// either sees a copy (and settles it) or has already ended (and the
	// copy is emitted as a message of its own).
	s.mu.Lock()
	validity := s.uidValidity
	tasks := make([]*task.Task, 0, len(group))
	for _, m := range group {
		raw, ok := bodies[m.uid]
		if !ok { // expunged meanwhile, or set aside
			continue
		}
		t := s.newTask(m, validity, raw)
		if s.addDupe(t.Key, m.uid) { // a copy of one in flight, maybe emitted just above
			continue
		}
		s.inflight[t.Key] = emitted{uid: m.uid, validity: validity, at: time.Now()}
		tasks = append(tasks, t)
	}
	s.st.InFlight = len(s.inflight)
	if len(tasks) == 0 {
		s.mu.Unlock()
		return nil
	}
	s.emitting = true
	s.mu.Unlock()
	err = emit.Emit(ctx, tasks...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emitting = false
	if err != nil {
		// The cursor stays below the group: all of it is scanned again.
		for _, t := range tasks {
			delete(s.inflight, t.Key)
			delete(s.dupes, t.Key)
		}
		s.st.InFlight = len(s.inflight)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fatal{fmt.Errorf("%w: %d tasks: %w", ErrEmit, len(tasks), err)}
	}
	now := time.Now() // InFlightTimeout counts from the end of Emit
	for _, t := range tasks {
		if e, ok := s.inflight[t.Key]; ok {
			e.at = now
			s.inflight[t.Key] = e
		}
	}
	s.st.Emitted += uint64(len(tasks))
	s.log.Debug("emitted", zap.Int("tasks", len(tasks)))
	return nil
}

// fetchGroup fetches the bodies of group, keyed by UID, and the sizes of
// those whose body is above MaxMessageSize (not read). When the server
// refuses the group (a NO that is not a temporary refusal), each message
// is fetched on its own. If the server returns at least one, its
// refusals are specific to the others: those are set aside. If it
// returns none (a group of one included), the server may be failing as a
// whole: nothing is set aside, each refusal is counted against its UID
// and the error is returned, so that the session fails and Run retries
// it with back-off; only a message refused alone in
// RefusedSessionsBeforeSetAside consecutive sessions is then set aside
// (see settleRefused).
func (s *Source) fetchGroup(c *imapclient.Client, group []meta) (bodies map[imap.UID][]byte, oversize map[imap.UID]int64, err error) {
	set := imap.UIDSet{}
	for _, m := range group {
		set.AddNum(m.uid)
	}
	bodies, oversize, err = s.fetchBodies(c, set)
	if !refused(err) {
		if err == nil {
			s.fetchedFine(bodies, oversize)
		}
		return bodies, oversize, err
	}
	var refs []refusal
	bodies, oversize = map[imap.UID][]byte{}, map[imap.UID]int64{}
	if len(group) == 1 {
		refs = append(refs, refusal{group[0], err}) // asking again is the same question
	} else {
		for _, m := range group {
			b, o, err := s.fetchBodies(c, imap.UIDSetNum(m.uid))
			if refused(err) {
				refs = append(refs, refusal{m, err})
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			maps.Copy(bodies, b)
			maps.Copy(oversize, o)
		}
	}
	s.fetchedFine(bodies, oversize)
	if err := s.settleRefused(refs, len(bodies)+len(oversize) > 0, "body"); err != nil {
		return nil, nil, err
	}
	return bodies, oversize, nil
}

// fetchedFine forgets the refusals counted against the messages whose
// body the server returned.
func (s *Source) fetchedFine(bodies map[imap.UID][]byte, oversize map[imap.UID]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for u := range bodies {
		delete(s.refusedAlone, u)
	}
	for u := range oversize {
		delete(s.refusedAlone, u)
	}
}

// refusal is a message the server refused to return on its own, with its
// answer.
type refusal struct {
	m   meta
	err error
}

// settleRefused decides what becomes of the messages of a batch the
// server refused one by one (what: "metadata" or "body"). When it
// returned another message of the batch (returned), the refusals are
// specific to these messages: they are set aside. When it returned none,
// it may be failing as a whole: each refusal is counted against its UID
// and an error is returned (the session fails, Run retries with
// back-off), unless every one of them has now been refused alone in
// RefusedSessionsBeforeSetAside consecutive sessions: then they are set
// aside. The error's text is the same every time the same batch fails
// the same way, so that Run's back-off grows.
// refusedAlone is how often, and since when, the server refused a
// message alone (settleRefused).
type refusedAlone struct {
	sessions int
	since    time.Time
}

func (s *Source) settleRefused(refs []refusal, returned bool, what string) error {
	if len(refs) == 0 {
		return nil
	}
	if !returned {
		s.mu.Lock()
		pending := 0
		now := s.now()
		for _, r := range refs {
			ra := s.refusedAlone[r.m.uid]
			if ra.sessions == 0 {
				ra.since = now
			}
			ra.sessions++
			s.refusedAlone[r.m.uid] = ra
			if ra.sessions < RefusedSessionsBeforeSetAside || now.Sub(ra.since) < s.cfg.Reconnect.Max {
				pending++
			}
		}
		s.mu.Unlock()
		if pending > 0 {
			first, last := refs[0].m.uid, refs[len(refs)-1].m.uid
			s.log.Warn("the server refuses every message asked for: retrying before setting any aside",
				zap.String("fetch", what), zap.Int("messages", len(refs)), zap.Int("not_yet_set_aside", pending),
				zap.Uint32("first_uid", uint32(first)), zap.Uint32("last_uid", uint32(last)),
				zap.Int("set_aside_after_sessions", RefusedSessionsBeforeSetAside), zap.Error(refs[0].err))
			return fmt.Errorf("imap: fetch %s: the server refused each of %d messages (uid %d to %d), none set aside yet: %w",
				what, len(refs), first, last, refs[0].err)
		}
	}
	for _, r := range refs {
		s.setAside(r.m, what, r.err)
	}
	return nil
}

// fetchBodies fetches BODY.PEEK[] of set under CommandTimeout (counted
// from the last progress).
func (s *Source) fetchBodies(c *imapclient.Client, set imap.UIDSet) (map[imap.UID][]byte, map[imap.UID]int64, error) {
	w := s.guard(c)
	bodies, oversize, err := fetchBodies(c, set, &imap.FetchItemBodySection{Peek: true}, s.cfg.MaxMessageSize, w)
	if err = w.done(err); err != nil {
		return nil, nil, fmt.Errorf("imap: fetch bodies: %w", err)
	}
	return bodies, oversize, nil
}

// setAside counts (Status.Refused) and logs a message the server refuses
// to return (FETCH answered NO, as Exchange does for a message it cannot
// convert) while it returns others of the same batch, or that it has
// refused alone in RefusedSessionsBeforeSetAside consecutive sessions
// (see settleRefused). It is neither emitted nor moved: it stays in the
// mailbox, and the cursor moves past it, so it is tried again only after
// a restart or a UIDVALIDITY change.
func (s *Source) setAside(m meta, what string, err error) {
	s.mu.Lock()
	s.st.Refused++
	delete(s.refusedAlone, m.uid)
	s.mu.Unlock()
	s.log.Warn("the server refuses to return a message: set aside, left in the mailbox",
		zap.Uint32("uid", uint32(m.uid)), zap.String("message_id", m.msgID), zap.String("fetch", what), zap.Error(err))
}

// refused reports whether err is the server's NO to a command about
// particular messages, other than a temporary refusal ([UNAVAILABLE],
// [INUSE], [LIMIT]: those end the session, which is retried with
// back-off). Such a NO may still be the server failing as a whole (NO
// [SERVERBUG]): whether a message is set aside for it is decided by
// settleRefused.
func refused(err error) bool {
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo {
		return false
	}
	switch ie.Code {
	case imap.ResponseCodeUnavailable, imap.ResponseCodeInUse, imap.ResponseCodeLimit:
		return false
	}
	return true
}

// permanentLogin reports whether err, the answer to LOGIN, refuses the
// credentials for good: NO [AUTHENTICATIONFAILED], NO
// [AUTHORIZATIONFAILED], or a NO without a response code (all many
// servers say). Other refusals (NO [UNAVAILABLE], [INUSE], throttling, a
// BAD) may pass and are retried.
func permanentLogin(err error) bool {
	return isNo(err, "", imap.ResponseCodeAuthenticationFailed, imap.ResponseCodeAuthorizationFailed)
}

// permanentSelect reports whether err, the answer to SELECT, says the
// mailbox does not exist: NO [NONEXISTENT] or a NO without a response
// code. Other refusals are retried.
func permanentSelect(err error) bool {
	return isNo(err, "", imap.ResponseCodeNonExistent)
}

// isNo reports whether err is a server's NO with one of codes ("": no
// response code).
func isNo(err error, codes ...imap.ResponseCode) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo && slices.Contains(codes, ie.Code)
}

// key is the stable task key of a message: its Message-ID (when it has
// one) and the SHA-256 of its raw bytes. The hash keeps two different
// messages that share a Message-ID (a sender reusing ids, a corrected
// mail) apart, and it is the same for the same message wherever and
// whenever it is fetched, so a restart or a re-emission reuses the key.
func (s *Source) key(msgID string, raw []byte) string {
	sum := sha256.Sum256(raw)
	h := "sha256:" + hex.EncodeToString(sum[:])
	if msgID != "" {
		return "imap:" + s.cfg.Mailbox + ":" + msgID + ":" + h
	}
	return "imap:" + s.cfg.Mailbox + ":" + h
}

func (s *Source) newTask(m meta, validity uint32, raw []byte) *task.Task {
	t := &task.Task{
		Kind:    s.cfg.Kind,
		Queue:   s.cfg.Queue,
		Payload: raw,
		Key:     s.key(m.msgID, raw),
		Headers: map[string]string{
			HeaderUID:             strconv.FormatUint(uint64(m.uid), 10),
			HeaderUIDValidity:     strconv.FormatUint(uint64(validity), 10),
			HeaderMailbox:         s.cfg.Mailbox,
			HeaderMessageID:       m.msgID,
			HeaderSize:            strconv.Itoa(len(raw)),
			task.HeaderCompletion: s.cfg.Name,
		},
	}
	if !m.date.IsZero() {
		t.Headers[HeaderInternalDate] = m.date.UTC().Format(time.RFC3339)
	}
	return t
}

// emitted is an in-flight message: emitted, its task not completed yet.
type emitted struct {
	uid      imap.UID
	validity uint32
	at       time.Time
}

// reapStale forgets the in-flight messages whose task has not completed
// within InFlightTimeout and moves the cursor back so the next scan finds
// them again: to the lowest UID known for the message under the current
// UIDVALIDITY, its own or a copy's (after a UIDVALIDITY change the
// message is known by the copy the rescan found). A task can vanish
// without a completion: a backend that drops a re-emitted key as a
// duplicate of one it already acked (the message was put back into the
// mailbox), or a task purged from the dead letter. Emitting it again is
// safe: a task still queued under the key is de-duplicated by the backend.
func (s *Source) reapStale(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, e := range s.inflight {
		if now.Sub(e.at) < s.cfg.InFlightTimeout {
			continue
		}
		var low imap.UID
		if e.validity == s.uidValidity {
			low = e.uid
		}
		if d, ok := s.dupes[key]; ok && d.validity == s.uidValidity {
			for _, u := range d.uids {
				if low == 0 || u < low {
					low = u
				}
			}
		}
		delete(s.inflight, key)
		delete(s.dupes, key)
		if low > 0 && low-1 < s.lastUID {
			s.lastUID = low - 1
		}
		s.st.Reemitted++
		s.log.Warn("task not completed in time: the message will be emitted again",
			zap.String("key", key), zap.Uint32("uid", uint32(e.uid)), zap.Uint32("rescan_from", uint32(low)),
			zap.Duration("inflight_timeout", s.cfg.InFlightTimeout))
	}
	s.st.InFlight = len(s.inflight)
	s.st.LastUID = uint32(s.lastUID)
}

// dupe is the UIDs of the extra copies of one message, under the
// UIDVALIDITY they were seen with.
type dupe struct {
	validity uint32
	uids     []imap.UID
}

// addDupe records uid as another copy of the in-flight message key and
// reports true, or reports false when key is not in flight: the copy is
// then a message of its own, to be emitted. The caller holds s.mu.
func (s *Source) addDupe(key string, uid imap.UID) bool {
	e, ok := s.inflight[key]
	if !ok {
		return false
	}
	if e.uid == uid && e.validity == s.uidValidity {
		return true // the in-flight message itself, seen again after a rescan
	}
	d := s.dupes[key]
	if d.validity != s.uidValidity {
		d = dupe{validity: s.uidValidity}
	}
	if !slices.Contains(d.uids, uid) {
		d.uids = append(d.uids, uid)
	}
	s.dupes[key] = d
	s.log.Debug("another copy of an in-flight message: settled with it", zap.String("key", key), zap.Uint32("uid", uint32(uid)))
	return true
}

// dupesOf returns the extra copies of key seen under validity.
func (s *Source) dupesOf(key string, validity uint32) []imap.UID {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dupes[key]
	if !ok || d.validity != validity {
		return nil
	}
	return slices.Clone(d.uids)
}

// forgetSettled removes the copies in settled from key's and returns
// those left: copies recorded after the completion read them. The caller
// holds s.mu.
func (s *Source) forgetSettled(key string, settled dupe) []imap.UID {
	d, ok := s.dupes[key]
	if !ok {
		return nil
	}
	if d.validity == settled.validity {
		d.uids = slices.DeleteFunc(d.uids, func(u imap.UID) bool { return slices.Contains(settled.uids, u) })
	}
	if len(d.uids) == 0 {
		delete(s.dupes, key)
		return nil
	}
	s.dupes[key] = d
	return d.uids
}

// dropDupes forgets key's copies. With rescan, those seen under the
// current UIDVALIDITY are scanned again (see Source.rescan); under
// another one their UIDs are void, and the rescan that followed the
// change finds them. The caller holds s.mu.
func (s *Source) dropDupes(key string, rescan bool) {
	d, ok := s.dupes[key]
	if !ok {
		return
	}
	delete(s.dupes, key)
	if !rescan || d.validity != s.uidValidity {
		return
	}
	for _, u := range d.uids {
		if s.rescan == 0 || u < s.rescan {
			s.rescan = u
		}
	}
	s.log.Warn("copies of a completed message left unsettled: scanning them again",
		zap.String("key", key), zap.Uint32s("uids", uidsOf(d.uids)))
}

func uidsOf(uids []imap.UID) []uint32 {
	out := make([]uint32, len(uids))
	for i, u := range uids {
		out[i] = uint32(u)
	}
	return out
}

// rejectOversized moves a message above MaxMessageSize to the failed
// folder (or only logs it when there is none). It is never emitted.
func (s *Source) rejectOversized(c *imapclient.Client, m meta) error {
	to := *s.cfg.OnFailure.MoveTo
	s.log.Warn("message too large, not emitted",
		zap.Uint32("uid", uint32(m.uid)), zap.String("message_id", m.msgID),
		zap.Int64("size", m.size), zap.Int64("max", s.cfg.MaxMessageSize), zap.String("moved_to", to))
	s.mu.Lock()
	s.st.Oversized++
	s.mu.Unlock()
	if to == "" {
		return nil
	}
	w := s.guard(c)
	err := ensureFolder(c, to, nil)
	if err == nil {
		w.kick()
		if _, err = c.Move(imap.UIDSetNum(m.uid), to).Wait(); err != nil {
			err = fmt.Errorf("imap: move oversized uid %d to %q: %w", m.uid, to, err)
		}
	}
	return w.done(err)
}

// ensureFolder creates folder unless it exists. known caches what this
// connection already checked (nil: no cache).
func ensureFolder(c *imapclient.Client, folder string, known map[string]bool) error {
	if known[folder] {
		return nil
	}
	list, err := c.List("", folder, nil).Collect()
	if err != nil {
		return fmt.Errorf("imap: list %q: %w", folder, err)
	}
	if len(list) == 0 {
		if err := c.Create(folder, nil).Wait(); err != nil {
			var ie *imap.Error
			if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAlreadyExists {
				return fmt.Errorf("imap: create %q: %w", folder, err)
			}
		}
	}
	if known != nil {
		known[folder] = true
	}
	return nil
}

// watchdog closes a connection whose command makes no progress within a
// timeout (Config.CommandTimeout), so that a server that stops answering
// while its TCP connection stays up ends the session (and the reconnect
// loop takes over) instead of stalling it. The go-imap client bounds a
// response once it has begun, not the wait for it.
type watchdog struct {
	t     *time.Timer
	d     time.Duration
	fired atomic.Bool
}

// guard starts a watchdog on c for one command; end it with done.
func (s *Source) guard(c *imapclient.Client) *watchdog {
	w := &watchdog{d: s.cfg.CommandTimeout}
	w.t = time.AfterFunc(w.d, func() {
		w.fired.Store(true)
		_ = c.Close()
	})
	return w
}

// kick restarts the countdown: the command made progress. A nil watchdog
// does nothing.
func (w *watchdog) kick() {
	if w != nil {
		w.t.Reset(w.d)
	}
}

// done stops the watchdog and returns err, saying so when the watchdog
// closed the connection (then never nil: the connection is gone).
func (w *watchdog) done(err error) error {
	w.t.Stop()
	if !w.fired.Load() {
		return err
	}
	if err == nil {
		err = errors.New("connection closed")
	}
	return fmt.Errorf("%w (no answer within command_timeout %s)", err, w.d)
}

// progressReader kicks a watchdog on every read that returns data.
type progressReader struct {
	r io.Reader
	w *watchdog
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.kick()
	}
	return n, err
}

// fetchBodies fetches the given section of every message in set, keyed by
// UID, reading no literal above limit: those are drained unread and
// reported in oversize with their size (the server's RFC822.SIZE is not
// trusted to bound memory). w, when not nil, is kicked as data arrives.
//
// It does not use FetchCommand.Collect: in go-imap v2.0.0-beta.8 a
// literal cut mid-read (connection closed) ends with a plain io.EOF, so it
// looks complete, and is then read again by the library's discard while
// its decoder goroutine already reads on (a data race). This checks each
// literal's length and, on a short or failed read, closes the client and
// abandons the command, so nothing truncated is emitted and the
// connection is never read from two goroutines.
func fetchBodies(c *imapclient.Client, set imap.UIDSet, section *imap.FetchItemBodySection, limit int64, w *watchdog) (bodies map[imap.UID][]byte, oversize map[imap.UID]int64, err error) {
	cmd := c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}})
	bodies, oversize = map[imap.UID][]byte{}, map[imap.UID]int64{}
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		w.kick()
		var uid imap.UID
		var body []byte
		big := int64(-1)
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					continue
				}
				size := it.Literal.Size()
				r := progressReader{r: it.Literal, w: w}
				var n int64
				if size > limit {
					n, err = io.Copy(io.Discard, r)
					big = size
				} else {
					body, err = io.ReadAll(io.LimitReader(r, size))
					n = int64(len(body))
				}
				if err == nil && n != size {
					// The library reports a connection closed mid-literal
					// as a clean EOF: never emit a truncated message.
					err = fmt.Errorf("literal truncated at %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
				}
				if err != nil {
					_ = c.Close()
					return nil, nil, fmt.Errorf("read literal: %w", err)
				}
			}
		}
		switch {
		case uid == 0:
		case big >= 0:
			oversize[uid] = big
		case body != nil:
			bodies[uid] = body
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, nil, err
	}
	return bodies, oversize, nil
}
