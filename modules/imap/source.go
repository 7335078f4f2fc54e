package imap

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"

	"github.com/plba/plba/internal/sleep"
	"github.com/plba/plba/platform/source"
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
	// message has none, or one longer than 998 bytes or with a control
	// character: see usableMessageID).
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
	// ErrEmit: the runtime refused tasks for a reason other than the
	// task itself (a task the queue refuses for good, too large or
	// invalid, is replaced by its task.Rejected stand-in instead, see
	// Status.Rejected). Run returns it (wrapped): the
	// supervisor decides; nothing was lost, the messages are found again.
	ErrEmit = errors.New("imap: emit failed")
	// ErrAlreadyRunning: Run was called while another Run is active.
	ErrAlreadyRunning = errors.New("imap: source already running")
	// ErrClosed: Complete was called after Close.
	ErrClosed = errors.New("imap: source closed")
	// ErrNotReady is wrapped by Check when the source is not connected or
	// its scan has made no progress for StaleAfter.
	ErrNotReady = errors.New("imap: not ready")
)

// fatal marks an error Run must return instead of retrying.
type fatal struct{ err error }

func (f fatal) Error() string { return f.err.Error() }
func (f fatal) Unwrap() error { return f.err }

// Source is an IMAP mailbox as a task source: it emits one task per
// message (payload: the raw RFC 5322 bytes) and, as a source.Completer,
// flags or moves the message once its task is done: Complete queues that,
// and the source's completion loop applies it (see Complete). Create it with
// NewSource; Run it under the runtime's supervisor; Close it after the
// worker pools have drained.
type Source struct {
	cfg  Config
	log  *zap.Logger
	wake chan struct{}
	now  func() time.Time // time.Now; tests move it

	running  atomic.Bool
	standby  atomic.Bool  // SetStandby
	queueMax atomic.Int64 // SetQueueMaxPayload

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
	// refusedAlone counts, per UID under uidValidity, the sessions in
	// which the server refused the message on evidence about it (see
	// RefusedSessionsBeforeSetAside). An entry is dropped when the
	// message's body is fetched fine, it is given up, its chunk emitted
	// (the message or its stand-in) unless it is held, or the message set
	// aside, and all of them when UIDVALIDITY changes.
	refusedAlone map[imap.UID]refusedAlone
	// suspects are the UIDs (under uidValidity) a fetch asked for when
	// the connection ended, with that fetch: they are fetched alone (see
	// poison.go).
	suspects map[imap.UID]fetchKind
	// served: the server returned a body in the current session; and
	// controlAsked, the fetches of suspects alone the session asked a
	// control for before: a connection ended on a message alone counts
	// against it only after the server returned a body in the session
	// (see lostAlone).
	served       bool
	controlAsked map[fetchKind]bool
	// controlFailures counts, per UID under uidValidity, the control
	// fetches of the message that failed, or that the server answered
	// with nothing (see controlFetch): it is chosen last for the next.
	// An entry is dropped when the message is returned as the control,
	// or is no longer in the mailbox, and all of them when UIDVALIDITY
	// changes.
	controlFailures map[imap.UID]int
	// aside is the UIDs (under uidValidity) the source leaves in the
	// mailbox on purpose: no scan emits them again, nor fetches them,
	// until UIDVALIDITY changes (see withoutAside, unfinished); a
	// reconcile pass forgets those no longer there (see forgetGone);
	// finished those a completion settled lately,
	// when (a scan does not emit them again, see emitMessages);
	// nextReconcile when the next scan searches the whole mailbox
	// (see reconcile.go).
	aside    map[imap.UID]bool
	finished map[imap.UID]time.Time
	// counted is the UIDs (under uidValidity) whose stand-in was counted
	// in Status.Refused or Status.Oversized: a stand-in emitted again
	// (after InFlightTimeout) counts its mail once. A reconcile pass
	// forgets those no longer there (see forgetGone).
	counted       map[imap.UID]bool
	nextReconcile time.Time
	st            Status
	emitting      bool
	// conn is the session's connection (see meter); only the session's
	// goroutine (Run) uses it.
	conn *meter

	comp completer
}

var (
	_ source.Source     = (*Source)(nil)
	_ source.Completer  = (*Source)(nil)
	_ source.Exclusiver = (*Source)(nil)
	_ source.Standbyer  = (*Source)(nil)
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
		cfg:             cfg,
		log:             log.Named("imap").With(zap.String("source", cfg.Name), zap.String("mailbox", cfg.Mailbox)),
		wake:            make(chan struct{}, 1),
		inflight:        map[string]emitted{},
		dupes:           map[string]dupe{},
		refusedAlone:    map[imap.UID]refusedAlone{},
		suspects:        map[imap.UID]fetchKind{},
		controlAsked:    map[fetchKind]bool{},
		controlFailures: map[imap.UID]int{},
		aside:           map[imap.UID]bool{},
		finished:        map[imap.UID]time.Time{},
		counted:         map[imap.UID]bool{},
		now:             time.Now,
	}
	s.st.Name = cfg.Name
	s.st.Mailbox = cfg.Mailbox
	s.st.Mode = cfg.Mode
	s.comp.init()
	return s, nil
}

// Name is the source name (Config.Name).
func (s *Source) Name() string { return s.cfg.Name }

// Exclusive reports Config.Exclusive: the runtime then runs the source on
// one host of the cluster at a time (source.Exclusiver).
func (s *Source) Exclusive() bool { return *s.cfg.Exclusive }

// SetStandby is called by the runtime (source.Exclusive) with true while
// this host waits for the mailbox's lease, and false once it holds it:
// a standby passes Check and shows Standby in its Status.
func (s *Source) SetStandby(on bool) {
	s.standby.Store(on)
	s.mu.Lock()
	s.st.Standby = on
	s.mu.Unlock()
}

// Config returns the effective configuration (defaults applied).
func (s *Source) Config() Config { return s.cfg }

// serverStamp is the time a server stamps its answers with (Dovecot's
// internal error: "Internal error occurred. Refer to server log for more
// information. [2026-12-06 03:45:21]"). Run compares a session's error
// with the last one's without it: a server failing every session the same
// way gives another text each second, and the back-off must grow all the
// same.
var serverStamp = regexp.MustCompile(`\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\]`)

// localAddr is the client's end of a connection in Go's network errors
// ("read tcp 127.0.0.1:57736->127.0.0.1:993: read: connection reset by
// peer"): another port each session, so Run compares errors without it
// too, or a server failing every session the same way (a reset after
// SELECT) would reset the back-off every time.
var localAddr = regexp.MustCompile(`\b((?:tcp|udp)[46]?) \S+->`)

// failureText is err's text as Run compares it with the last session's:
// without what varies from one session to the next for the same failure
// (serverStamp, localAddr).
func failureText(err error) string {
	msg := serverStamp.ReplaceAllString(fmt.Sprint(err), "[stamp]")
	return localAddr.ReplaceAllString(msg, "$1 [local]->")
}

// Run connects, selects the mailbox and emits every message not yet
// emitted, then watches for new mail (IDLE or polling) until ctx ends,
// when it returns nil. Lost connections, commands the server does not
// answer within Config.CommandTimeout, an IDLE the server ended on its own
// (ErrIdleEnded) and temporary refusals are retried
// inside Run with exponential back-off (Config.Reconnect), so a flaky
// server does not crash-loop the supervisor; a session that selected the
// mailbox resets the back-off unless it failed exactly as the one before
// within Reconnect.Max. A FETCH the server refuses for every message it
// is asked for (none returned, as when the server fails as a whole) ends
// the session too and is retried so, whatever the server answers:
// nothing is skipped. A message is given up (see Status.Refused: its
// stand-in, carrying the server's answer, is dead-lettered, and moves it
// to the failed folder) only on evidence about it: refused while the
// server returns others of its batch, or asking for it alone ending the
// connection, in RefusedSessionsBeforeSetAside sessions over at least
// Config.RefusalSpan (a message the server dies on: see poison.go; one
// whose fetch alone went unanswered until the command timeout, or ended
// by a reset, is set aside instead, see Status.SetAside). Run returns an error only for what a retry
// cannot fix: refused credentials (ErrAuth), a mailbox that does not
// exist when Run starts (ErrMailbox), a certificate that does not verify,
// or an Emit failure other than ctx ending (ErrEmit). A mailbox gone
// after Run watched it is waited for with the reconnect back-off, like a
// lost connection (Status.LastError says so, and Check fails), and
// watched again once it is created again. Only one Run may be active.
func (s *Source) Run(ctx context.Context, emit source.Emitter) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer s.running.Store(false)
	defer s.setConnected(false)

	bo := newBackoff(s.cfg.Reconnect)
	var prev string // the last session's error
	// watched: a session of this Run selected the mailbox. A mailbox gone
	// since (deleted, maybe to be created again: a SELECT may come
	// between the two) is waited for like a lost connection; only one
	// missing from the start is ErrMailbox.
	var watched bool
	for {
		began := time.Now()
		progressed, err := s.session(ctx, emit)
		if ctx.Err() != nil {
			return nil
		}
		s.setError(err)
		var f fatal
		if errors.As(err, &f) && !(watched && errors.Is(f.err, ErrMailbox)) {
			s.log.Error("imap source stopped", zap.Error(err))
			return f.err
		}
		watched = watched || progressed
		// A session that selected the mailbox resets the back-off, unless
		// it was short and failed exactly as the one before: a command the
		// server refuses every time must not be retried at the initial
		// delay forever.
		msg := failureText(err)
		if progressed && (msg != prev || time.Since(began) >= s.cfg.Reconnect.Max) {
			bo.Reset()
		}
		prev = msg
		delay := next(bo)
		s.mu.Lock()
		s.st.Reconnects++
		s.mu.Unlock()
		s.log.Warn("imap connection lost, reconnecting", zap.Error(err), zap.Duration("in", delay))
		if !sleep.For(ctx.Done(), delay) {
			return nil
		}
	}
}
