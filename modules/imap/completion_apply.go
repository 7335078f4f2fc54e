package imap

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"
)

// action is what a completion does to its messages.
type action struct {
	seen   bool
	moveTo string
}

// applyBatch connects when needed, selects the mailbox (again), finds the
// messages of every request (by UID while UIDVALIDITY matches, else by
// Message-ID), keeps those that still exist (one UID SEARCH for all) and
// applies each action to its messages at once (one UID STORE, one UID
// MOVE).
func (s *Source) applyBatch(ctx context.Context, batch []*compReq) error {
	cp := &s.comp
	if cp.c != nil {
		select {
		case <-cp.c.Closed():
			cp.reset()
		default:
		}
	}
	if cp.c == nil {
		c, m, err := dial(ctx, s.cfg, nil, nil)
		if err != nil {
			return sessionError{errFromFatal(err)}
		}
		cp.c, cp.conn = c, m
	}
	c := cp.c
	// Every command, the SELECT included, is bounded by ctx: dial bounds
	// only the login, and a SELECT the server never answers would
	// otherwise hold the loop, and Close, forever.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()

	// Every batch selects the mailbox again. It syncs the session's view,
	// as a NOOP would: a server adds the messages delivered since the
	// last command only then, and without it a UID SEARCH for a fresh
	// message finds nothing, which would read as "handled already". And
	// it sees the mailbox as it is now: one deleted and created again
	// under its name (a new UIDVALIDITY) stays, to a session that had it
	// selected, the deleted one (Dovecot answers every command there from
	// the old view), where the new mailbox's mail is never found.
	cp.conn.arm("SELECT", s.cfg.answerBudget())
	sel, err := selectWait(c, s.cfg.Mailbox, nil)
	if err = cp.conn.done(err); err != nil {
		cp.reset()
		return sessionError{fmt.Errorf("select %q: %w", s.cfg.Mailbox, err)}
	}
	cp.validity = sel.UIDValidity
	cp.suspects.attemptBegins()

	var (
		order  []action
		groups = map[action][]imap.UID{}
		all    []imap.UID
		reqs   = make([][]imap.UID, len(batch)) // each request's candidates
	)
	for i, r := range batch {
		a := action{seen: r.seen, moveTo: r.moveTo}
		if _, ok := groups[a]; !ok {
			order = append(order, a)
			groups[a] = nil
		}
		uids, err := s.locate(ctx, c, boxRef{s.cfg.Mailbox, cp.validity}, r)
		if err != nil {
			return err
		}
		r.settled = dupe{validity: cp.validity, uids: s.dupesOf(r.t.Key, cp.validity)}
		uids = append(uids, r.settled.uids...)
		reqs[i] = uids
		groups[a] = append(groups[a], uids...)
		all = append(all, uids...)
	}
	exists := map[imap.UID]bool{}
	if len(all) > 0 {
		cp.conn.arm("UID SEARCH", s.cfg.mailboxBudget(c))
		data, err := c.UIDSearch(&imap.SearchCriteria{
			UID:     []imap.UIDSet{imap.UIDSetNum(all...)},
			NotFlag: []imap.Flag{imap.FlagDeleted},
		}, nil).Wait()
		if err = cp.conn.done(err); err != nil {
			return fmt.Errorf("uid search: %w", err)
		}
		found, err := searchUIDs(c, data)
		if err != nil {
			return fmt.Errorf("uid search: %w", err)
		}
		for _, u := range found {
			exists[u] = true
		}
	}
	gone := s.failedAndSucceeded(batch, reqs, exists)
	copied, err := s.copiedBefore(ctx, c, batch, exists)
	if err != nil {
		return err
	}
	for _, a := range order {
		var uids, done []imap.UID // done: copied by an earlier application
		for _, u := range groups[a] {
			if exists[u] {
				if copied[u] {
					done = append(done, u)
				} else {
					uids = append(uids, u)
				}
				delete(exists, u) // one action per message
			}
		}
		if len(uids)+len(done) == 0 {
			continue
		}
		undo := acting(batch, reqs, append(slices.Clone(uids), done...))
		// The messages copied before were flagged \Seen before their
		// COPY (the copy carries it): only their delete is left to do.
		if a.seen && len(uids) > 0 {
			set := imap.UIDSetNum(uids...)
			cp.conn.arm("UID STORE", s.cfg.mailboxBudget(c))
			err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
			if err = cp.conn.done(err); err != nil {
				if refusedUnchanged(err) {
					undo()
				}
				return fmt.Errorf("flag \\Seen uid %v: %w", set, err)
			}
		}
		if a.moveTo == "" {
			continue
		}
		if len(done) > 0 {
			set := imap.UIDSetNum(done...)
			if err := deleteMessages(c, cp.conn, s.cfg, set); err != nil {
				return fmt.Errorf("delete uid %v, copied to %q before: %w", set, a.moveTo, err)
			}
		}
		if len(uids) > 0 {
			set := imap.UIDSetNum(uids...)
			if err := moveInto(c, cp.conn, s.cfg, set, a.moveTo, cp.folders); err != nil {
				var ce copiedError
				if errors.As(err, &ce) {
					copySent(batch, reqs, a, uids, boxRef{s.cfg.Mailbox, cp.validity}, ce.since)
				} else if !a.seen && len(done) == 0 && refusedUnchanged(err) {
					undo()
				}
				return fmt.Errorf("move uid %v to %q: %w", set, a.moveTo, err)
			}
		}
	}
	return s.fromFailed(ctx, c, gone)
}

// acting records, before the commands are sent, that an application
// acts on uids: the requests of batch with one of them among their
// messages (reqs) found their mail (compReq.found, which later
// applications keep: the mail may be gone because this one moved it). It
// returns what undoes that for the requests it marked, for commands the
// server refused before they changed anything (see refusedUnchanged):
// the mail is not theirs to count if another client takes it away before
// the next application.
func acting(batch []*compReq, reqs [][]imap.UID, uids []imap.UID) (undo func()) {
	var marked []*compReq
	for i, r := range batch {
		if !r.found && slices.ContainsFunc(reqs[i], func(u imap.UID) bool { return slices.Contains(uids, u) }) {
			r.found = true
			marked = append(marked, r)
		}
	}
	return func() {
		for _, r := range marked {
			r.found = false
		}
	}
}

// refusedUnchanged reports whether err is the server's NO or BAD to a
// STORE, or to a move (or what precedes it: LIST, CREATE, COPY), that
// changed nothing: not a lost connection (the command may have been
// applied), nor a move without MOVE that failed after its COPY.
func refusedUnchanged(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && !errors.As(err, new(copiedError))
}

// isServerNo reports whether err is the server's answer (NO or BAD) to a
// command about the batch's messages, rather than a failed connection or
// session.
func isServerNo(err error) bool {
	var se sessionError
	var ie *imap.Error
	return !errors.As(err, &se) && errors.As(err, &ie)
}

// sessionError marks a failure to open the completion session (dial,
// login, select): about the server, not about the batch's messages.
type sessionError struct{ err error }

func (e sessionError) Error() string { return e.err.Error() }
func (e sessionError) Unwrap() error { return e.err }
