package imap

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/task"
)

// RefusedSessionsBeforeSetAside is how many consecutive sessions the
// server must refuse a message alone (it was asked for that message and
// the others of its batch one by one, and returned none) before the
// message is given up: its stand-in is dead-lettered (see refusedTask). A
// refusal of only some messages of a batch is specific to them: those
// are given up at once. A refusal of all of them may as well be the
// server failing as a whole (NO [SERVERBUG] for a moment), so the session
// fails instead and Run retries it with back-off; only a message still
// refused alone after this many sessions, and over at least Reconnect.Max
// since its first refusal, is given up (never for NO [SERVERBUG], the
// server saying it fails), so that a message the server can
// never return does not block the mailbox forever while a server failing
// for a while only delays mail. A message whose fetch alone ends the
// connection is counted the same way (see poison.go). (The name is from
// when such a message was only set aside, left in the mailbox unseen by
// the dead letters.)
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
// message alone (settleRefused), or ended the connection on it alone
// (poison.go, completion_poison.go), and its last such error.
type refusedAlone struct {
	sessions int
	since    time.Time
	last     error
	// silent: one of the connections counted ended by the command
	// timeout, without a word from the server (see errNoAnswer).
	silent bool
	// what: the fetch the last connection counted ended on ("metadata",
	// "body"; see lostAlone).
	what string
}

// add counts one more refusal, err, at now.
func (ra *refusedAlone) add(now time.Time, err error) {
	if ra.sessions == 0 {
		ra.since = now
	}
	ra.sessions++
	ra.last = err
	ra.silent = ra.silent || errors.Is(err, errNoAnswer)
}

// due reports whether the message is to be given up at now: refused in
// RefusedSessionsBeforeSetAside consecutive sessions over at least
// minSpan (Reconnect.Max), so that a passing failure gives nothing up.
func (ra refusedAlone) due(now time.Time, minSpan time.Duration) bool {
	return ra.sessions >= RefusedSessionsBeforeSetAside && now.Sub(ra.since) >= minSpan
}

// settleRefused decides what becomes of the messages of a batch the
// server refused one by one (what: "metadata" or "body"). When it
// returned another message of the batch (returned), the refusals are
// specific to these messages: they are given up, and returned with the
// reason for their stand-ins (see refusedTask). When it returned none, it
// may be failing as a whole: each refusal is counted against its UID and
// an error is returned (the session fails, Run retries with back-off),
// unless every one of them has now been refused alone in
// RefusedSessionsBeforeSetAside consecutive sessions, and none with NO
// [SERVERBUG] (the server failing, for as long as it does): then they
// are given up. The error's text is the same every time the same batch fails the
// same way, so that Run's back-off grows. A message the server says was
// expunged (NO [EXPUNGEISSUED]) is no refusal of its content: there is
// no mail to dead-letter, it is set aside.
func (s *Source) settleRefused(refs []refusal, returned bool, what string) ([]refusal, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	sessions := make([]int, len(refs))
	if !returned {
		s.mu.Lock()
		pending := 0
		now := s.now()
		for i, r := range refs {
			ra := s.refusedAlone[r.m.uid]
			ra.add(now, r.err)
			s.refusedAlone[r.m.uid] = ra
			sessions[i] = ra.sessions
			// NO [SERVERBUG] to every message asked for is the server
			// saying it fails (Dovecot's internal error: storage, index,
			// locks), not that a message is bad: however long it lasts,
			// it gives nothing up. A message it refuses so while it
			// returns another is given up (returned).
			if !ra.due(now, s.cfg.Reconnect.Max) || isNo(r.err, imap.ResponseCodeServerBug) {
				pending++
			}
		}
		s.mu.Unlock()
		if pending > 0 {
			first, last := refs[0].m.uid, refs[len(refs)-1].m.uid
			s.log.Warn("the server refuses every message asked for: retrying before giving any up",
				zap.String("fetch", what), zap.Int("messages", len(refs)), zap.Int("not_yet_given_up", pending),
				zap.Uint32("first_uid", uint32(first)), zap.Uint32("last_uid", uint32(last)),
				zap.Int("given_up_after_sessions", RefusedSessionsBeforeSetAside), zap.Error(refs[0].err))
			return nil, fmt.Errorf("imap: fetch %s: the server refused each of %d messages (uid %d to %d), none given up yet: %w",
				what, len(refs), first, last, refs[0].err)
		}
	}
	var out []refusal
	for i, r := range refs {
		if isNo(r.err, responseCodeExpungeIssued) {
			s.setAside(r.m, what, r.err, "the server refuses to return a message it says was expunged: set aside, not dead-lettered", false)
			continue
		}
		r.reason = fmt.Sprintf("the IMAP server refuses to return the message (%s fetch, refused in %d consecutive sessions): %v",
			what, max(1, sessions[i]), r.err)
		out = append(out, r)
	}
	return out, nil
}

// refusedTask is the stand-in (task.Rejected, without the message) of a
// message the server refuses to return, given up (settleRefused,
// skipLost): the pool dead-letters it with r's reason (the server's
// answer, how many sessions it refused the message or ended on it), and
// its completion moves the message to OnFailure.MoveTo (or leaves it
// where it is, not fetched again, without a failed folder), as for an
// oversized mail. It carries what is known of the message: its UID and
// the mailbox's UIDVALIDITY, and, when the server returned its metadata,
// its Message-ID, size and arrival time. Its key is the message's place,
// as an oversized stand-in's.
func (s *Source) refusedTask(r refusal, validity uint32) *task.Task {
	m := r.m
	t := s.newTask(m, validity, nil)
	t.Key = s.standInKey(m, validity, "refused")
	if m.size > 0 {
		t.Headers[HeaderSize] = strconv.FormatInt(m.size, 10)
	} else {
		delete(t.Headers, HeaderSize) // the metadata was refused too: unknown
	}
	s.log.Warn("the server refuses to return a message: its stand-in is dead-lettered with the reason, to move to the failed folder",
		zap.Uint32("uid", uint32(m.uid)), zap.String("message_id", m.msgID),
		zap.String("reason", r.reason), zap.String("moved_to", *s.cfg.OnFailure.MoveTo))
	return task.Rejected(t, headerText(r.reason))
}

// maxReasonBytes bounds a stand-in's reason made from the server's words.
const maxReasonBytes = 2000

// headerText is s fit for a task header, as a queue takes one (JetStream:
// no line break): control characters (a hostile server's words, an
// error's text over several lines) become spaces, and a text longer than
// maxReasonBytes is cut, on a character boundary, with "…".
func headerText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\ufffd"))
	if len(s) <= maxReasonBytes {
		return s
	}
	cut := maxReasonBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
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
func (s *Source) setAside(m meta, what string, err error, msg string, again bool) {
	s.mu.Lock()
	s.st.SetAside++
	delete(s.refusedAlone, m.uid)
	if !again {
		s.leftInPlace(m.uid)
	}
	s.mu.Unlock()
	s.log.Warn(msg,
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
