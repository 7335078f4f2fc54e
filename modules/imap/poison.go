package imap

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"
)

// A message the server fails on: asked for it, the server drops the
// connection instead of answering, every time (Dovecot's imap process
// dies on a maildir file shorter than the size its name records). Until
// the source knows which message it is, every session fails on the
// batch that holds it, and no mail of the mailbox is emitted.
//
// So a fetch that ends with the connection (no answer from the server,
// not even a NO) makes the messages it asked for suspects: the next
// sessions ask for each of them alone. A message whose fetch alone ends
// the connection is counted as refused alone (see refusedAlone) only if
// the server returned the body of other mail in the same session: that
// of the others of its group first (one the connection ended on before
// is fetched after them, see lostLast), or, when no body was returned
// yet, that of another message asked for first (see proveServing).
// Metadata is no proof, whatever the fetch alone asked for: the
// envelope of mail fetched before may come from the server's index
// while its mail store fails (see servedLocked). A
// server that ends the connection on every body (Dovecot, its
// imap_fetch_failure at its default, when its mail store fails), or on
// the metadata of every mail it must read for it, is failing as a
// whole: nothing is counted, the sessions fail and are retried for as
// long as it lasts; a message alone in its mailbox so waits for other
// mail. It is given up, as one the server refuses, once it was counted
// in
// RefusedSessionsBeforeSetAside sessions over at least Config.RefusalSpan:
// its stand-in is dead-lettered with the reason (see refusedTask), and
// its completion moves it to the failed folder. The others flow
// meanwhile, each session getting one message further. A network failure
// makes suspects too: they are then fetched alone once, which costs round
// trips and loses nothing. Only the server closing the connection is
// evidence about the message: a fetch alone that ends by the command
// timeout, without a word from the server (a network gone silent whenever
// a body is sent), by a body fetch's overall deadline (an answer too
// slow: a slow network, or a server dripping it, see guardBody), or by a
// reset (the network, a firewall, a server
// crashing) says nothing about the mail, and a message counted so is only
// set aside until the next reconcile pass, never dead-lettered
// (skipLost).

// lostConnection reports whether err, a fetch's error, is not the
// server's answer: the connection ended (or the command timed out), and
// not because ctx, the session's, ended.
func lostConnection(ctx context.Context, err error) bool {
	var ie *imap.Error
	return err != nil && !errors.As(err, &ie) && ctx.Err() == nil
}

// suspectAll makes uids suspects when err, the error of a fetch (what)
// of them, ended the connection, and reports whether it did.
func (s *Source) suspectAll(ctx context.Context, uids []imap.UID, what fetchKind, err error) bool {
	if !lostConnection(ctx, err) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range uids {
		s.suspects[u] = what
	}
	return true
}

// anySuspect reports whether one of uids is a suspect.
func (s *Source) anySuspect(uids []imap.UID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range uids {
		if _, ok := s.suspects[u]; ok {
			return true
		}
	}
	return false
}

// lostAlone counts a fetch of m alone that ended the connection with err,
// when the server returned the body of another mail in the session
// (see servedLocked; metadata, which may come from its index, does
// not count): else it may be failing as a
// whole (Dovecot ends the connection on any body when its mail store
// fails), nothing is counted, and m is only fetched after the others of
// its group from now on (see lostLast), so that another mail can tell
// next time.
func (s *Source) lostAlone(ctx context.Context, m meta, what fetchKind, err error) {
	if !lostConnection(ctx, err) {
		return
	}
	s.mu.Lock()
	ra := s.refusedAlone[m.uid]
	ra.dropped = true
	proven := s.servedLocked()
	if proven {
		ra.add(s.now(), err)
		ra.what = what
	}
	s.refusedAlone[m.uid] = ra
	s.mu.Unlock()
	if !proven {
		s.log.Warn("the connection ended while fetching one message alone, the server having returned no other mail in the session: not counted against it (the server may be failing as a whole)",
			zap.Uint32("uid", uint32(m.uid)), zap.String("fetch", string(what)), zap.Error(err))
		return
	}
	s.log.Warn("the connection ended while fetching one message alone: the server may fail on it",
		zap.Uint32("uid", uint32(m.uid)), zap.String("fetch", string(what)), zap.Int("sessions", ra.sessions),
		zap.Int("given_up_after_sessions", RefusedSessionsBeforeSetAside), zap.Error(err))
}

// skipLost reports whether m is to be skipped, fetching it alone having
// ended the connection in RefusedSessionsBeforeSetAside sessions over at
// least Config.RefusalSpan. When the server closed the connection each
// time, m is given up: standIn, and its refusal with the reason for its
// stand-in (see refusedTask). When one of those fetches went unanswered
// until the command timeout, was cut by its overall deadline (see
// guardBody), or ended by a reset, that is no sign the
// server fails on m (a network gone silent whenever the body is sent, a
// path that drops large packets, a firewall resetting connections, does
// that to any mail): m is set aside
// (Status.SetAside), left in the mailbox without a dead letter, so that
// the mail after it flows and no good mail goes to the failed folder.
func (s *Source) skipLost(m meta, what fetchKind) (r refusal, skip, standIn bool) {
	s.mu.Lock()
	ra, ok := s.refusedAlone[m.uid]
	// It stays a suspect, and its count stays, until its chunk is
	// emitted (processChunk): a session that fails before gives it up
	// again at once.
	// A message whose body fetch ended the connection is given up
	// where its body is asked for, with the metadata the server returned
	// (its Message-ID and size for its stand-in).
	_, suspect := s.suspects[m.uid]
	poisoned := ok && suspect && ra.due(s.now(), s.cfg.refusalSpan()) &&
		(what == fetchBody || ra.what == what)
	s.mu.Unlock()
	if !poisoned {
		return refusal{}, false, false
	}
	if ra.network {
		s.setAside(m, what, ra.last, "no answer, or a reset, whenever a message is fetched alone: set aside until the next reconcile pass, not dead-lettered (the network may be at fault)", true)
		return refusal{}, true, false
	}
	err := errors.New("the connection ends whenever the server is asked for this message")
	return refusal{m: m, err: err, reason: fmt.Sprintf(
		"the IMAP server ends the connection whenever it is asked for the message (%s fetch alone, %d consecutive sessions ended; the last: %v)",
		ra.what, ra.sessions, ra.last)}, true, true
}

// sessionBegins forgets what the server returned in the last session
// (see lostAlone).
func (s *Source) sessionBegins() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.served = false
	clear(s.controlAsked)
}

// servedLocked reports whether the server returned mail in this session
// that proves it serves, whatever the fetch (metadata or body): a body,
// as only its store can give one. Metadata proves nothing: Dovecot
// returns the envelopes it cached while its store fails, and ends the
// connection on those it must read from the store. s.mu held.
func (s *Source) servedLocked() bool {
	return s.served
}

// serving records that the server returned a body in this session (see
// hasContent).
func (s *Source) serving() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.served = true
}

// proveServing is asked before suspects among uids are fetched alone
// (what): when the server returned no body in this session, it is
// asked, once a session, for another message (see control), so that a
// connection ended on one of them counts against it (see lostAlone).
// The control asks for that message's body whatever the suspects'
// fetch: metadata the server returned may come from its index (Dovecot
// answers the envelope of mail fetched before from its cache, and ends
// the connection on that of mail it must read from a failing store), a
// body only from the mail store. It returns the control's error, the
// server failing as a whole: the session fails, nothing counted; its
// text names the fetch of them the connection ended on (see
// lostOnWhat), and no UID, so that it is the same every session of an
// outage and Run's back-off grows. With no other message to ask for,
// the suspects are fetched all the same, a message the connection ends
// on first then fetched after the others next time (see lostLast).
func (s *Source) proveServing(ctx context.Context, c *imapclient.Client, uids []imap.UID, what fetchKind) error {
	s.mu.Lock()
	skip := s.servedLocked() || s.controlAsked[what]
	s.controlAsked[what] = true
	s.mu.Unlock()
	if skip {
		return nil
	}
	err := s.controlOn(ctx, c)(uids)
	if err == nil || errors.Is(err, errNoControl) {
		return nil
	}
	return fmt.Errorf("imap: fetch %s of %d messages alone, the connection having ended on their %s: the server returns no other message either, none counted: %w",
		what, len(uids), s.lostOnWhat(uids), err)
}

// proveBefore is asked before the metadata of u is fetched alone, metas
// those of its group the server returned alone so far: when a fetch of
// u alone ended the connection before (it is fetched after the others,
// see lostLast) and the server returned no body in the session, it is
// asked for the body of one of metas (see controlAmong), so that the
// connection ending on u counts against it (see lostAlone): their
// metadata may come from the server's index while its store fails,
// their body only from the store. Without it a mailbox whose every
// mail was a suspect (a batch the connection ended on, no other mail
// to ask for) never told the mail the server dies on from the server
// failing. It returns the control's error, the server failing as a
// whole: the session fails, nothing counted.
func (s *Source) proveBefore(ctx context.Context, c *imapclient.Client, u imap.UID, metas []meta) error {
	s.mu.Lock()
	ask := s.refusedAlone[u].dropped && !s.servedLocked() && len(metas) > 0
	s.mu.Unlock()
	if !ask {
		return nil
	}
	others := make([]imap.UID, len(metas))
	for i, m := range metas {
		others[i] = m.uid
	}
	err := s.controlAmong(ctx, c, others)
	if err == nil || errors.Is(err, errNoControl) {
		return nil
	}
	return fmt.Errorf("imap: fetch metadata of a message alone, the connection having ended on it alone before: the server returns no body of another either, none counted: %w", err)
}

// lostOnWhat names the fetch of the suspects among uids that the
// connection ended on: "metadata", "bodies", or "metadata or bodies"
// when it ended on either for some of them.
func (s *Source) lostOnWhat(uids []imap.UID) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var meta, body bool
	for _, u := range uids {
		switch s.suspects[u] {
		case fetchMetadata:
			meta = true
		case fetchBody:
			body = true
		}
	}
	switch {
	case meta && body:
		return "metadata or bodies"
	case body:
		return "bodies"
	}
	return "metadata"
}

// lostLast returns uids in the order to fetch them alone: those a fetch
// alone ended the connection on (see lostAlone) after the others, so that
// the mail the server returns tells, in the session, whether it fails on
// those or as a whole.
func (s *Source) lostLast(uids []imap.UID) []imap.UID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(uids)
	slices.SortStableFunc(out, func(a, b imap.UID) int {
		da, db := s.refusedAlone[a].dropped, s.refusedAlone[b].dropped
		switch {
		case da == db:
			return 0
		case db:
			return -1
		}
		return 1
	})
	return out
}

// cleared forgets the suspects among uids (their chunk went through).
// The caller holds s.mu.
func (s *Source) cleared(uids []imap.UID) {
	for _, u := range uids {
		delete(s.suspects, u)
	}
}
