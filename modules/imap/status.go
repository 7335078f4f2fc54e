package imap

import (
	"context"
	"fmt"
	"time"
)

// Status is a snapshot of a source, for the control plane and logs.
// Refused counts the messages the server refused to return (FETCH
// answered NO) while it returned others of the same batch, or closed the
// connection when asked for them alone while it returned other mail in
// the same session (see poison.go), in RefusedSessionsBeforeSetAside
// sessions over at least Config.RefusalSpan: each one's stand-in was
// dead-lettered with the reason, and its mail moves to the failed folder.
// A mail whose stand-in is emitted again (after InFlightTimeout) counts
// once. A refusal of every message asked for (the server failing as a whole,
// whatever it answers) is never counted here: the session fails
// (LastError, Reconnects) and is retried with back-off, however long it
// lasts.
type Status struct {
	Name      string `json:"name"`
	Mailbox   string `json:"mailbox"`
	Mode      Mode   `json:"mode"`
	Connected bool   `json:"connected"`
	// Standby: the source is exclusive and this host waits for its lease
	// (another host watches the mailbox).
	Standby     bool   `json:"standby,omitempty"`
	UIDValidity uint32 `json:"uidvalidity"`
	LastUID     uint32 `json:"last_uid"`
	InFlight    int    `json:"in_flight"`
	Emitted     uint64 `json:"emitted"`
	// CompletedOK and CompletedFailed count the completions applied
	// (task.Succeeded, task.DeadLettered) whose mail the source found
	// and flagged or moved, or that had nothing to do (a dead letter
	// without a failed folder). CompletedAgain counts those whose mail
	// it did not find (an outcome told twice, a mail handled elsewhere,
	// or moved or removed by another client since it was emitted):
	// nothing was flagged or moved, and the log says so.
	CompletedOK     uint64 `json:"completed_ok"`
	CompletedFailed uint64 `json:"completed_failed"`
	CompletedAgain  uint64 `json:"completed_again"`
	// Oversized counts the messages over the size limit (see Rejected),
	// each once, its stand-in emitted again (after InFlightTimeout) or not.
	Oversized uint64 `json:"oversized"`
	// Refused counts the messages the emission gave up: the server
	// refused to return them, or ended the connection whenever one was
	// fetched alone. Each one's stand-in was emitted (task.Rejected,
	// carrying the server's answer), to be dead-lettered, and the
	// message moves to the failed folder (or, without one, stays in the
	// mailbox, not fetched again).
	Refused uint64 `json:"refused"`
	// SetAside counts the times the emission left a message in the
	// mailbox without a dead letter: the server answered that another
	// client expunged it (NO [EXPUNGEISSUED]) when asked for it (not
	// fetched again until a restart or a UIDVALIDITY change), or its
	// fetch alone went unanswered until the command timeout, was cut by
	// a body fetch's overall deadline (see Config.CommandTimeout), or
	// ended by a connection reset, in RefusedSessionsBeforeSetAside
	// sessions (a silent or slow network, a firewall, does that to any
	// mail: fetched again by the next reconcile pass, and counted again
	// if set aside again).
	SetAside uint64 `json:"set_aside,omitempty"`
	// CompletionSetAside counts the messages set aside by the
	// completions: the connection ended (or its body came back empty,
	// its RFC822.SIZE above 0) whenever one was fetched alone
	// while looking for a task's mail (by content: it may be another
	// mail than the one looked for, so no dead letter is made for it),
	// the server returning the body of another mail of the mailbox in
	// the same attempts, or none there to ask for over RefusalSpan (see
	// completion_poison.go).
	// They are left where they are and passed over by later completions
	// until a restart; one of the watched mailbox is given up by the
	// emission on its own (Refused) if the server fails on it there too.
	CompletionSetAside uint64 `json:"completion_set_aside"`
	CompletionBatches  uint64 `json:"completion_batches"`
	// CompletionsQueued counts the completions queued (Complete);
	// CompletionsPending is how many wait to be applied now.
	CompletionsQueued  uint64 `json:"completions_queued"`
	CompletionsPending int    `json:"completions_pending"`
	// CompletionFailures counts the completions of failed batches (each
	// retried until it is applied); LastCompletionError is the last
	// failure's error.
	CompletionFailures  uint64 `json:"completion_failures"`
	LastCompletionError string `json:"last_completion_error,omitempty"`
	// Rejected counts the messages the queue refused for good (too large,
	// invalid): a stand-in carrying the reason was emitted instead, to be
	// dead-lettered, and the message moves to the failed folder.
	Rejected  uint64 `json:"rejected"`
	Reemitted uint64 `json:"reemitted"`
	// Gone counts the in-flight messages a reconcile pass no longer
	// found in the mailbox: completed by another host (the tasks of an
	// exclusive source are handled on any host), or removed.
	Gone uint64 `json:"gone"`
	// Reconciled counts the messages a reconcile pass found handled or
	// emitted before yet still in the mailbox, and emitted again.
	Reconciled         uint64 `json:"reconciled"`
	UIDValidityChanges uint64 `json:"uidvalidity_changes"`
	Reconnects         uint64 `json:"reconnects"`
	// LastPoll is when the last scan ended: every mail its search found
	// was emitted (or set aside). LastProgress is when the scan last
	// moved on: a chunk of mail fetched and emitted (or given up), a
	// scan ended. Check judges LastProgress: a first scan of a backlog
	// may last much longer than StaleAfter.
	LastPoll     time.Time `json:"last_poll"`
	LastProgress time.Time `json:"last_progress"`
	LastError    string    `json:"last_error,omitempty"`
}

// Status returns a snapshot of the source's state and counters.
func (s *Source) Status() Status {
	s.comp.mu.Lock()
	pending := len(s.comp.pending) + s.comp.busy
	s.comp.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.CompletionsPending = pending
	return st
}

func (s *Source) setConnected(v bool) {
	s.mu.Lock()
	s.st.Connected = v
	s.mu.Unlock()
}

func (s *Source) setError(err error) {
	s.mu.Lock()
	s.st.Connected = false
	if err != nil {
		s.st.LastError = err.Error()
	}
	s.mu.Unlock()
}

// StaleAfter is how long the scan may go without progress before Check
// fails: 3× PollInterval when polling, 3× min(Reconcile, IdleRenew) when
// idling.
func (s *Source) StaleAfter() time.Duration {
	s.mu.Lock()
	mode := s.st.Mode
	s.mu.Unlock()
	if mode == ModeIdle {
		return 3 * min(s.cfg.Reconcile, s.cfg.IdleRenew)
	}
	return 3 * s.cfg.PollInterval
}

// progressedLocked records that the scan moved on (Status.LastProgress).
// s.mu is held.
func (s *Source) progressedLocked() { s.st.LastProgress = time.Now() }

// Check is a readiness check: it fails (wrapping ErrNotReady) while the
// source is not connected, or while its scan has made no progress for
// longer than StaleAfter: no chunk of mail (up to BatchSize) fetched and
// emitted, no scan ended (Status.LastProgress). So a source working
// through a backlog (a first scan of thousands of mails, which may last
// far longer than StaleAfter) passes as long as its chunks keep coming,
// and one stuck on a command the server does not answer (the command
// timeout far), or failing every session after its search, or that has
// made no progress yet since it started, fails. It passes while the
// source is blocked handing a batch to a full queue (back-pressure is
// not a fault). An exclusive source whose host waits for the mailbox's
// lease (another host holds it: see SetStandby) passes: the standby is
// ready to take over (the platform's lease check tells whether it
// could: it fails while the lease's store does).
func (s *Source) Check(context.Context) error {
	stale := s.StaleAfter()
	if s.standby.Load() && !s.running.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.st.Connected {
		if s.st.LastError != "" {
			return fmt.Errorf("%w: %s: not connected: %s", ErrNotReady, s.cfg.Name, s.st.LastError)
		}
		return fmt.Errorf("%w: %s: not connected", ErrNotReady, s.cfg.Name)
	}
	if s.emitting {
		return nil
	}
	if s.st.LastProgress.IsZero() {
		return fmt.Errorf("%w: %s: no progress yet: no scan has ended, nor emitted a chunk of mail", ErrNotReady, s.cfg.Name)
	}
	if age := time.Since(s.st.LastProgress); age > stale {
		return fmt.Errorf("%w: %s: no progress for %s (limit %s): no scan has ended, nor emitted a chunk of mail", ErrNotReady, s.cfg.Name, age.Round(time.Second), stale)
	}
	return nil
}

// Details reports the mailbox status for the source supervisor, so that it
// shows in the source's component in /admin/v1/status.
func (s *Source) Details() any { return s.Status() }
