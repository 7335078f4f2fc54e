package imap

import (
	"maps"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"
)

// The reconcile pass: every Reconcile, the scan selects the mailbox
// again (see scan: a mailbox deleted and created again under its name is
// seen only so, with its new UIDVALIDITY), searches the whole
// mailbox instead of only above the cursor, and emits again a message
// below the cursor that is neither in flight, nor set aside, nor finished
// within the last two Reconcile intervals: a message handled but left in
// the mailbox (a completion the server acknowledged and did not apply, or
// one still queued when the process stopped). Emitting it again is safe:
// the handler is idempotent per message, and its completion is applied
// then.

// reconcileDue reports whether this scan is a reconcile pass (and, when
// it is, schedules the next one).
func (s *Source) reconcileDue(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Before(s.nextReconcile) {
		return false
	}
	s.nextReconcile = now.Add(s.cfg.Reconcile)
	for u, at := range s.finished {
		if now.Sub(at) > 2*s.cfg.Reconcile {
			delete(s.finished, u)
		}
	}
	return true
}

// unfinished returns the UIDs among found, all at or below the cursor,
// that the source does not account for: not in flight (nor a copy of one
// in flight), not set aside, not finished recently.
func (s *Source) unfinished(found []imap.UID) []imap.UID {
	s.mu.Lock()
	defer s.mu.Unlock()
	known := map[imap.UID]bool{}
	for _, e := range s.inflight {
		if e.validity == s.uidValidity {
			known[e.uid] = true
		}
	}
	for _, d := range s.dupes {
		if d.validity == s.uidValidity {
			for _, u := range d.uids {
				known[u] = true
			}
		}
	}
	var out []imap.UID
	for _, u := range found {
		if _, done := s.finished[u]; !known[u] && !s.aside[u] && !done {
			out = append(out, u)
		}
	}
	if len(out) > 0 {
		s.st.Reconciled += uint64(len(out))
		s.log.Warn("reconcile: messages handled or emitted before but still in the mailbox: emitting them again to finish them",
			zap.Int("messages", len(out)), zap.Uint32("first_uid", uint32(out[0])))
	}
	return out
}

// leftInPlace records a message the source leaves in the mailbox on
// purpose (set aside: expunged, said the server; or dead-lettered, a
// stand-in's included, without a folder to move to): the reconcile pass does not emit it again. The caller holds s.mu.
func (s *Source) leftInPlace(uid imap.UID) {
	if uid != 0 {
		s.aside[uid] = true
	}
}

// withoutAside returns uids without those the source leaves in the
// mailbox on purpose (see leftInPlace): a scan above a cursor moved back
// below them does not fetch a message set aside again, nor emit again
// the mail of a dead letter left in place (nor fetch again, and count
// refused again, one the server refused, whose stand-in's dead letter
// left it there).
func (s *Source) withoutAside(uids []imap.UID) []imap.UID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.DeleteFunc(uids, func(u imap.UID) bool { return s.aside[u] })
}

// finishedUIDs records the messages a completion just settled, so that a
// reconcile pass whose search ran before the move does not take them for
// unfinished. The caller holds s.mu.
func (s *Source) finishedUIDs(validity uint32, uids []imap.UID, now time.Time) {
	if validity != s.uidValidity {
		return
	}
	for _, u := range uids {
		s.finished[u] = now
	}
}

// forgetGone ends the in-flight messages (emitted before searched, under
// the current UIDVALIDITY, completion not queued here) that a full search
// started at searched no longer finds: another host handled their task and
// moved or flagged them (an exclusive source's tasks are handled, and
// completed, on any host), or a person removed them. Their completion, if
// it still comes here, finds nothing to do. It forgets too the messages
// left in the mailbox on purpose, the refusals counted (a message held,
// see settleRefused), the suspects (see poison.go), and the stand-ins
// counted (Source.counted), that
// the search no longer finds, so that
// their record stays as small as the mailbox (a UID is never given again
// under one UIDVALIDITY; one flagged \Deleted, or \Seen in seen-only
// mode, and cleared again is a message of its own).
func (s *Source) forgetGone(found []imap.UID, searched time.Time) {
	there := make(map[imap.UID]bool, len(found))
	for _, u := range found {
		there[u] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	maps.DeleteFunc(s.aside, func(u imap.UID, _ bool) bool { return !there[u] })
	maps.DeleteFunc(s.refusedAlone, func(u imap.UID, _ refusedAlone) bool { return !there[u] })
	maps.DeleteFunc(s.suspects, func(u imap.UID, _ fetchKind) bool { return !there[u] })
	maps.DeleteFunc(s.counted, func(u imap.UID, _ bool) bool { return !there[u] })
	n := 0
	for key, e := range s.inflight {
		if e.completing || e.validity != s.uidValidity || !e.at.Before(searched) || there[e.uid] {
			continue
		}
		delete(s.inflight, key)
		delete(s.dupes, key)
		n++
	}
	if n > 0 {
		s.st.Gone += uint64(n)
		s.st.InFlight = len(s.inflight)
		s.log.Debug("reconcile: in-flight messages no longer in the mailbox (completed by another host)", zap.Int("messages", n))
	}
}
