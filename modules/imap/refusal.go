package imap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"
)

// RefusedSessionsBeforeSetAside is how many sessions the server must
// refuse a message on evidence about that message before it is given up:
// its stand-in is dead-lettered (see refusedTask). Evidence is the
// server answering the others of the message's batch but not it (for a
// metadata refusal, once it returned a body in the session: see
// metadataProves), or closing the connection whenever the message alone
// is asked for while it returns the body of other mail in the session
// (see poison.go); and the refusals must span Config.RefusalSpan (1m by
// default), so that a server restarting, or failing for a moment, is not
// taken for a bad mail. A refusal of every message asked for is no
// evidence about any of them, whatever the server's answer (NO
// [SERVERBUG], a bare NO, NO [UNAVAILABLE]): it is the server failing as
// a whole, the session fails and Run retries it with back-off, for as
// long as it lasts, and no mail is given up for it; so is a refusal of a
// held message alone unless the server returns another message in the
// same session (see control). A message still to be given up is held
// meanwhile (see settleRefused): the mail around it flows. (The name is
// from when such a message was only set aside, left in the mailbox
// unseen by the dead letters.)
const RefusedSessionsBeforeSetAside = 3

// refusal is a message the server refused to return on its own, with its
// answer, and, once it is given up (settleRefused, skipLost), the reason
// its stand-in is dead-lettered with.
type refusal struct {
	m      meta
	err    error
	reason string
}

// refusedAlone is how often, and since when, the server refused a
// message on evidence about it (settleRefused), or ended the connection
// on it alone (poison.go, completion_poison.go), and its last such error.
type refusedAlone struct {
	sessions int
	since    time.Time
	last     error
	// network: one of the connections counted ended without the server
	// closing it: the command timeout, with no word from the server (see
	// errNoAnswer), a body fetch's overall deadline, its answer coming
	// too slowly (see errTooSlow), or a reset (see resetByPeer).
	network bool
	// what: the fetch the last connection counted ended on ("metadata",
	// "body"; see lostAlone).
	what fetchKind
	// held: the server refused the message while it returned another of
	// its batch, and it is not given up yet: it is asked for again, with
	// the mail above it (see settleRefused).
	held bool
	// dropped: a fetch of the message alone ended the connection,
	// counted or not (see lostAlone): it is fetched after the others of
	// its group.
	dropped bool
}

// add counts one more refusal, err, at now.
func (ra *refusedAlone) add(now time.Time, err error) {
	if ra.sessions == 0 {
		ra.since = now
	}
	ra.sessions++
	ra.last = err
	ra.network = ra.network || errors.Is(err, errNoAnswer) || errors.Is(err, errTooSlow) || resetByPeer(err)
}

// due reports whether the message is to be given up at now: refused in
// RefusedSessionsBeforeSetAside sessions over at least minSpan
// (Config.refusalSpan for the scan; Reconnect.Max for the completions,
// completion_poison.go), so that a passing failure gives nothing up.
func (ra refusedAlone) due(now time.Time, minSpan time.Duration) bool {
	return ra.sessions >= RefusedSessionsBeforeSetAside && now.Sub(ra.since) >= minSpan
}

// resetByPeer reports whether err is a connection reset: the network's
// failure or a server's crash, never the server's word about a message.
// go-imap (v2.0.0-beta.8) formats the read error of a response with %v,
// so the reset is known by its text there.
func resetByPeer(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || err != nil && strings.Contains(err.Error(), syscall.ECONNRESET.Error())
}

// settleRefused decides what becomes of the messages of a batch the
// server refused one by one (what: "metadata" or "body"). When it
// returned another message of the batch (returned), the refusals are
// evidence about these messages: each is counted against its UID, and
// given up once due (see RefusedSessionsBeforeSetAside), returned with
// the reason for its stand-in (see refusedTask); one not due yet is held:
// neither emitted nor given up, it is scanned again from its UID
// (Source.rescan), the mail around it flowing. When it returned none, it
// may be failing as a whole, whatever it answered: unless every message
// refused is held already, the answer is no NO [SERVERBUG] (the server
// saying it fails), and the server returns another message in the same
// session when asked for it (check, see control), nothing is counted nor
// given up and an error is returned: the session fails, Run retries with
// back-off, for as long as the server fails. A held message alone in its
// mailbox (no other to ask for) so waits for other mail, the sessions
// failing meanwhile, rather than good mail being given up for a server
// that refused every message for a while. The error's text is the same
// every time the same batch fails the same way, so that Run's back-off
// grows. A message the server says was expunged (NO [EXPUNGEISSUED]) is
// no refusal of its content: there is no mail to dead-letter, it is set
// aside.
func (s *Source) settleRefused(refs []refusal, returned bool, what fetchKind, check control) ([]refusal, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	// Without another message returned, the refusals are evidence only
	// about messages refused before while the server returned others
	// (held), only if it does not say it fails, and only if it returns
	// another message now.
	proven := returned
	var why error
	if !returned {
		proven = true
		var suspects []imap.UID
		s.mu.Lock()
		for _, r := range refs {
			if isNo(r.err, responseCodeExpungeIssued) {
				continue // no refusal of its content: nothing to prove
			}
			suspects = append(suspects, r.m.uid)
			if !s.refusedAlone[r.m.uid].held || isNo(r.err, imap.ResponseCodeServerBug) {
				proven = false
			}
		}
		s.mu.Unlock()
		if proven && len(suspects) > 0 {
			why = check(suspects)
			proven = why == nil
		}
	}
	sessions := make([]int, len(refs))
	due := make([]bool, len(refs))
	s.mu.Lock()
	now := s.now()
	if proven {
		for i, r := range refs {
			if isNo(r.err, responseCodeExpungeIssued) {
				continue
			}
			ra := s.refusedAlone[r.m.uid]
			ra.add(now, r.err)
			ra.held = true
			if due[i] = ra.due(now, s.cfg.refusalSpan()); due[i] {
				delete(s.refusedAlone, r.m.uid) // given up: its chunk moves on
			} else {
				s.refusedAlone[r.m.uid] = ra
			}
			sessions[i] = ra.sessions
		}
	}
	s.mu.Unlock()
	if !proven {
		first, last := refs[0].m.uid, refs[len(refs)-1].m.uid
		if why != nil {
			s.log.Warn("the server refuses again mail it refused before, and returns no other mail now: retrying, counting nothing for that",
				zap.String("fetch", string(what)), zap.Int("messages", len(refs)),
				zap.Uint32("first_uid", uint32(first)), zap.Uint32("last_uid", uint32(last)),
				zap.Error(refs[0].err), zap.NamedError("control", why))
			return nil, fmt.Errorf("imap: fetch %s: the server refused each of %d held messages (uid %d to %d), none counted: %w (%w)",
				what, len(refs), first, last, refs[0].err, why)
		}
		s.log.Warn("the server refuses every message asked for: retrying, giving none up for that",
			zap.String("fetch", string(what)), zap.Int("messages", len(refs)),
			zap.Uint32("first_uid", uint32(first)), zap.Uint32("last_uid", uint32(last)), zap.Error(refs[0].err))
		return nil, fmt.Errorf("imap: fetch %s: the server refused each of %d messages (uid %d to %d), none given up: %w",
			what, len(refs), first, last, refs[0].err)
	}
	var out []refusal
	for i, r := range refs {
		if isNo(r.err, responseCodeExpungeIssued) {
			s.setAside(r.m, what, r.err, "the server refuses to return a message it says was expunged: set aside, not dead-lettered", false)
			continue
		}
		if !due[i] {
			s.hold(r.m.uid)
			s.log.Warn("the server refuses a message while it returns the others of its batch: held, asked for again before it is given up",
				zap.Uint32("uid", uint32(r.m.uid)), zap.String("fetch", string(what)), zap.Int("sessions", sessions[i]),
				zap.Int("given_up_after_sessions", RefusedSessionsBeforeSetAside), zap.Duration("over_at_least", s.cfg.refusalSpan()),
				zap.Error(r.err))
			continue
		}
		r.reason = fmt.Sprintf("the IMAP server refuses to return the message (%s fetch, refused in %d sessions while it returned other mail): %v",
			what, sessions[i], r.err)
		out = append(out, r)
	}
	return out, nil
}

// metadataProves reports whether the server, having returned metas and
// refused the metadata of refs, returned other mail in the session in a
// way that makes the refusals evidence about refs (see settleRefused):
// a body. The metadata returned is not enough: it may come from the
// server's index while its store fails, and the refused metadata be
// that of mail it must read from the store. When no body came back yet
// in the session, the control asks for one (see control); the error is
// the control's, the server failing as a whole: the session fails,
// nothing counted.
func (s *Source) metadataProves(ctx context.Context, c *imapclient.Client, metas []meta, refs []refusal) (bool, error) {
	if len(metas) == 0 || len(refs) == 0 {
		return len(metas) > 0, nil
	}
	s.mu.Lock()
	served := s.servedLocked()
	s.mu.Unlock()
	if served {
		return true, nil
	}
	uids := make([]imap.UID, len(refs))
	for i, r := range refs {
		uids[i] = r.m.uid
	}
	err := s.controlOn(ctx, c)(uids)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errNoControl):
		return false, nil
	}
	return false, fmt.Errorf("imap: fetch metadata: the server refused %d messages and returns the body of no other, none counted: %w", len(refs), err)
}

// hold has the next scan see uid again (Source.rescan): a message the
// server refused, not given up yet. The mail emitted above it is in
// flight, found again and not emitted twice (see addDupe).
func (s *Source) hold(uid imap.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rescan == 0 || uid < s.rescan {
		s.rescan = uid
	}
}

// responseCodeExpungeIssued is the NO a server gives for a message
// another client expunged meanwhile (RFC 2180 4.1.3).
const responseCodeExpungeIssued imap.ResponseCode = "EXPUNGEISSUED"

// setAside counts (Status.SetAside) and logs (msg) a message the source
// leaves in the mailbox without a dead letter: one the server says was
// expunged when asked for it (settleRefused), or one whose fetch alone
// went unanswered (skipLost: again). It is neither emitted nor moved,
// and the cursor moves past it. It is tried again after a restart or a
// UIDVALIDITY change, and, when again, by the next reconcile pass (see
// reconcile.go), which finds it below the cursor, not accounted for.
func (s *Source) setAside(m meta, what fetchKind, err error, msg string, again bool) {
	s.mu.Lock()
	s.st.SetAside++
	delete(s.refusedAlone, m.uid)
	if !again {
		s.leftInPlace(m.uid)
	}
	s.mu.Unlock()
	s.log.Warn(msg,
		zap.Uint32("uid", uint32(m.uid)), zap.String("message_id", m.msgID), zap.String("fetch", string(what)), zap.Error(err))
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
