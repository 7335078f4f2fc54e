package imap

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/task"
)

// The stand-ins: a task.Rejected task, without the message, emitted for a
// mail that cannot become a task of its own (above MaxMessageSize, or
// one the server refuses to return), dead-lettered with the reason; its
// completion moves the mail to OnFailure.MoveTo.

// standInKey is the key of m's stand-in of a kind ("oversized",
// "refused"): the message's place, the content being unknown: the
// account and mailbox (username@host, so that two sources on one queue
// watching mailboxes of the same name, under the same UIDVALIDITY, do not
// share a key, one stand-in dropped as the other's duplicate), the
// mailbox's UIDVALIDITY and the message's UID; stable across restarts.
// (Before the account was in it, a stand-in emitted again after an
// upgrade, its first one still in the queue, is not de-duplicated: it is
// dead-lettered twice, its mail moved once, the second completion
// counted in Status.CompletedAgain.)
func (s *Source) standInKey(m meta, validity uint32, kind string) string {
	account := s.cfg.Username + "@" + strings.ToLower(s.cfg.Host)
	return "imap:" + s.cfg.Mailbox + ":" + m.msgID + ":" + kind + ":" + account + ":" +
		strconv.FormatUint(uint64(validity), 10) + ":" + strconv.FormatUint(uint64(m.uid), 10)
}

// oversizedTask is the stand-in (task.Rejected, without the message) of
// a message above MaxMessageSize, whose body is not fetched: the pool
// dead-letters it with the reason, and its completion moves the message to
// OnFailure.MoveTo, as for any mail that cannot become a task. Its key is
// the message's place (see standInKey), so it is stable across restarts
// and de-duplicated as any task key.
func (s *Source) oversizedTask(m meta, validity uint32) *task.Task {
	t := s.newTask(m, validity, nil)
	t.Key = s.standInKey(m, validity, "oversized")
	t.Headers[HeaderSize] = strconv.FormatInt(m.size, 10)
	reason := fmt.Sprintf("message of %s exceeds max_message_size of %s: not fetched", sizeText(m.size), sizeText(s.cfg.MaxMessageSize))
	s.log.Warn("message too large: its stand-in is dead-lettered with the reason, to move to the failed folder",
		zap.Uint32("uid", uint32(m.uid)), zap.String("message_id", m.msgID),
		zap.Int64("size", m.size), zap.Int64("max", s.cfg.MaxMessageSize), zap.String("moved_to", *s.cfg.OnFailure.MoveTo))
	return task.Rejected(t, reason)
}

// sizeText formats n bytes in bytes below 1 MiB, else in MiB (mib).
func sizeText(n int64) string {
	if n < 1<<20 {
		return strconv.FormatInt(n, 10) + " bytes"
	}
	return mib(n)
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
