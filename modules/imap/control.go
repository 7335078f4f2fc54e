package imap

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"
)

// control asks the server, in the session, for the body of another
// message than suspects: nil when it returns it, else why not.
// settleRefused asks it when every message the server refused in a
// session is held already and nothing else of the session's fetch came
// back, proveServing before suspects are fetched alone: the refusals
// count against them only if the server shows, in the same session,
// that it returns mail; a server refusing every body for a while (mail
// on a failing store, the index fine) is then not taken for mail
// refused. It asks for a body whatever fetch was refused: metadata may
// come from the server's index while its store fails (Dovecot answers
// the envelope of mail fetched before from its cache), a body only from
// the store.
type control func(suspects []imap.UID) error

// controlBytes is how much of a body the control asks for (BODY.PEEK[]
// from its start): the server reads it from its store all the same,
// and a large mail costs no more than a small one.
const controlBytes = 1024

// errNoControl is control's answer when the mailbox holds no message to
// ask for but the suspects (and those known for trouble): the refusals
// are no evidence, the held mail waits for other mail.
var errNoControl = errors.New("no other message in the mailbox to tell the server's failure from the message's")

// controlOn is the control on c in the session ctx (see controlFetch).
func (s *Source) controlOn(ctx context.Context, c *imapclient.Client) control {
	return func(suspects []imap.UID) error { return s.controlFetch(ctx, c, suspects) }
}

// controlFetch is the control (see control) on c: of the mailbox's
// messages other than suspects, and than those known for trouble
// (refused, fetched when a connection ended, left in the mailbox on
// purpose), it asks for one (see controlAmong).
func (s *Source) controlFetch(ctx context.Context, c *imapclient.Client, suspects []imap.UID) error {
	w := s.guard(c)
	s.conn.arm("UID SEARCH", s.cfg.mailboxBudget(c))
	data, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err = s.conn.done(w.done(err)); err != nil {
		return fmt.Errorf("imap: control: uid search: %w", err)
	}
	all, err := searchUIDs(c, data)
	if err != nil {
		return fmt.Errorf("imap: control: uid search: %w", err)
	}
	s.mu.Lock()
	var others []imap.UID
	for _, u := range all {
		_, refused := s.refusedAlone[u]
		_, suspect := s.suspects[u]
		if !slices.Contains(suspects, u) && !refused && !suspect && !s.aside[u] {
			others = append(others, u)
		}
	}
	s.keepControlFailures(all)
	s.mu.Unlock()
	return s.controlAmong(ctx, c, others)
}

// controlAmong asks for the first controlBytes of the body of one of
// others (see askControl), and keeps the record of the session: the
// server serves when it returns it (see serving), and the message is
// chosen after the others from now on when it fails (see controlFailed)
// or is answered with nothing (see controlUnanswered). A NO is the server
// failing: the error says so, and the session fails. errNoControl when
// others is empty, or when the message was answered with nothing.
func (s *Source) controlAmong(ctx context.Context, c *imapclient.Client, others []imap.UID) error {
	if len(others) == 0 {
		return errNoControl
	}
	s.mu.Lock()
	failed := maps.Clone(s.controlFailures)
	s.mu.Unlock()
	u, served, err := s.askControl(c, s.conn, others, failed)
	if err != nil {
		s.controlFailed(ctx, u, err)
		return fmt.Errorf("imap: control: fetch body: %w", err)
	}
	if !served {
		s.controlUnanswered(u)
		return errNoControl
	}
	s.serving()
	s.controlServed(u)
	return nil
}

// askControl is the control's fetch, on c (its connection m), shared by
// the watching session (controlAmong) and the completion connection (see
// completion_poison.go): the first controlBytes of the body of one of
// others, not empty (BODY.PEEK[]<0.n>: no flag changes), in one fetch:
// the one that failed the fewest controls (failed), the highest UID
// among those. It returns the UID asked for, and whether the server
// returned something of its body: not when it answered with nothing
// (expunged meanwhile, or a body with nothing in it: no sign the server
// reads its store, see hasContent). A message the server fails on
// whenever it is asked for (one read and left in the mailbox long ago,
// never scanned, so never held) so does not fail every control while
// another message can tell: each control asks for one message, and its
// failure is counted against that message by the caller. (The control
// asked for the sizes of up to 16 messages first, to ask for the
// smallest body: a server failing on the size of one of them, as Dovecot
// does on a mail file without its size in its name that it cannot read,
// failed every control, and the failure was counted against none.)
func (s *Source) askControl(c *imapclient.Client, m *meter, others []imap.UID, failed map[imap.UID]int) (u imap.UID, served bool, err error) {
	u = slices.MinFunc(others, func(a, b imap.UID) int {
		return cmp.Or(cmp.Compare(failed[a], failed[b]), cmp.Compare(b, a))
	})
	w := s.guardBody(c, controlBytes)
	section := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Size: controlBytes}}
	// A server that sends more than asked for has the rest drained
	// unread: a body all the same.
	bodies, more, err := fetchBodies(c, m, s.cfg, imap.UIDSetNum(u), section, controlBytes, w)
	if err = w.done(err); err != nil {
		return u, false, err
	}
	return u, len(bodies[u]) > 0 || more[u] > 0, nil
}

// serverReturns asks the server, in the session, for another message
// than those of deferred (chunks refused in a row, see scan; what: the
// last refused fetch), see control: nil when it returns it, or when
// there is none to ask for; else the error, the server failing as a
// whole: nothing is counted nor given up, the session fails and Run
// retries it with back-off.
func (s *Source) serverReturns(ctx context.Context, c *imapclient.Client, deferred []refusedGroup, what fetchKind) error {
	var pile []imap.UID
	for _, d := range deferred {
		for _, r := range d.refs {
			pile = append(pile, r.m.uid)
		}
	}
	err := s.controlOn(ctx, c)(pile)
	if err == nil || errors.Is(err, errNoControl) {
		return nil
	}
	last := deferred[len(deferred)-1].refs
	s.log.Warn("the server refuses every message asked for: retrying, giving none up for that",
		zap.String("fetch", string(what)), zap.Int("messages", len(pile)),
		zap.Uint32("first_uid", uint32(pile[0])), zap.Uint32("last_uid", uint32(pile[len(pile)-1])),
		zap.Error(last[0].err), zap.NamedError("control", err))
	return fmt.Errorf("imap: fetch %s: the server refused each of %d messages (uid %d to %d) and another, none given up: %w (%w)",
		what, len(pile), pile[0], pile[len(pile)-1], last[0].err, err)
}

// controlFailed counts a control fetch of u that failed with err
// (in the session ctx): u is chosen after the others from now on (see
// controlFetch). A fetch that ended the connection makes u a suspect too,
// as any fetch does (see poison.go): it is not the control again while it
// is one, and a scan asks for it alone (mail processed and left in the
// mailbox, \Seen, never scanned again, is one until the next reconcile
// pass, whose search leaves it out: see forgetGone). The UID is logged
// here, not in the control's error: that error ends the session, and a
// text naming another mail each session (the control's mail changes
// when it fails) would reset Run's back-off after every session of an
// outage.
func (s *Source) controlFailed(ctx context.Context, u imap.UID, err error) {
	if ctx.Err() != nil {
		return // the session ended: nothing learnt about u
	}
	s.suspectAll(ctx, []imap.UID{u}, fetchBody, err)
	s.mu.Lock()
	s.controlFailures[u]++
	n := s.controlFailures[u]
	s.mu.Unlock()
	s.log.Info("the control fetch failed: the message is chosen after the others next time",
		zap.Uint32("uid", uint32(u)), zap.Int("failed_controls", n), zap.Error(err))
}

// controlUnanswered counts a control fetch of u that the server
// answered with nothing: no evidence either way (u may have been
// expunged meanwhile), but u is chosen after the others from now on, as
// a failed control's mail is: a mail the server lists and never returns
// would otherwise be asked for in every session, the held mail never
// told from the server failing while another mail can tell.
func (s *Source) controlUnanswered(u imap.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.controlFailures[u]++
}

// controlServed forgets the failed controls of u: the server returned it.
func (s *Source) controlServed(u imap.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.controlFailures, u)
}

// keepControlFailures forgets the failed controls of the messages no
// longer in the mailbox (all: the UIDs it holds), so that the record
// stays as small as the mailbox. The caller holds s.mu.
func (s *Source) keepControlFailures(all []imap.UID) {
	if len(s.controlFailures) == 0 {
		return
	}
	there := make(map[imap.UID]bool, len(all))
	for _, u := range all {
		there[u] = true
	}
	maps.DeleteFunc(s.controlFailures, func(u imap.UID, _ int) bool { return !there[u] })
}
