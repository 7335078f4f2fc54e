package imap

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/task"
)

// A task dead-lettered and later re-driven (its cause fixed) can succeed:
// its mail, which the dead letter's completion moved to OnFailure.MoveTo,
// then belongs where a success puts it: in OnSuccess.MoveTo, or, when
// that is empty (seen-only mode), back in the watched mailbox, flagged
// \Seen (which keeps the scan from emitting it again). The success's
// completion finds it no longer in the watched mailbox and looks for it
// in the failed folder, by content (findByContent), as after a
// UIDVALIDITY change.

// successFolder is where the mail of r, a success, belongs: its move's
// folder, else (seen-only mode) the watched mailbox.
func (s *Source) successFolder(r *compReq) string {
	if r.moveTo != "" {
		return r.moveTo
	}
	return s.cfg.Mailbox
}

// failedAndSucceeded returns the requests of batch that succeeded and
// whose message is no longer in the watched mailbox (none of reqs[i],
// their candidate UIDs, exists): their mail may be in the failed folder.
// A request without payload (a stand-in) cannot be found there.
func (s *Source) failedAndSucceeded(batch []*compReq, reqs [][]imap.UID, exists map[imap.UID]bool) []*compReq {
	failed := *s.cfg.OnFailure.MoveTo
	if failed == "" || failed == s.cfg.Mailbox {
		return nil
	}
	var out []*compReq
	for i, r := range batch {
		if r.outcome != task.Succeeded || (r.moveTo == "" && !r.seen) || r.moveTo == failed || r.size == 0 {
			continue
		}
		found := false
		for _, u := range reqs[i] {
			found = found || exists[u]
		}
		if !found {
			out = append(out, r)
		}
	}
	return out
}

// fromFailed selects the failed folder, applies each request's action to
// its mail found there (see successFolder), and selects the watched mailbox again. On any
// failure in between the connection is dropped, so that no later command
// runs on the failed folder by mistake; a server's NO is narrowed down to
// its request as any other (see processBatch).
func (s *Source) fromFailed(ctx context.Context, c *imapclient.Client, reqs []*compReq) error {
	if len(reqs) == 0 {
		return nil
	}
	cp := &s.comp
	failed := *s.cfg.OnFailure.MoveTo
	err := s.applyInFailed(ctx, c, failed, reqs)
	if err == nil {
		var sel *imap.SelectData
		cp.conn.arm("SELECT", s.cfg.answerBudget())
		sel, err = selectWait(c, s.cfg.Mailbox, nil)
		if err = cp.conn.done(err); err == nil {
			cp.validity = sel.UIDValidity
			return nil
		}
		err = fmt.Errorf("select %q again: %w", s.cfg.Mailbox, err)
	}
	cp.reset() // the next attempt starts on a fresh connection
	return err
}

// applyInFailed applies, in the failed folder, the action of each of
// reqs to its mail found there. A move without MOVE that failed after its
// COPY was sent (its answer lost) is marked on its request, and the next
// application looks for the copy in its destination before it copies
// again, as the watched mailbox's completions do (see copiesFound): found,
// the original is only deleted, so that the mail is not there twice.
func (s *Source) applyInFailed(ctx context.Context, c *imapclient.Client, failed string, reqs []*compReq) error {
	s.comp.conn.arm("SELECT", s.cfg.answerBudget())
	sel, err := selectWait(c, failed, nil)
	if err = s.comp.conn.done(err); err != nil {
		// No failed folder, or one the server can never have (NO
		// [CANNOT]: Dovecot's answer to a name with a character it
		// refuses, such as "/" where its separator is "."): nothing
		// there. The dead letters that would move mail there fail on
		// their own, and are retried, saying why.
		if isNo(err, "", imap.ResponseCodeNonExistent, imap.ResponseCodeCannot) {
			return nil
		}
		return fmt.Errorf("select %q: %w", failed, err)
	}
	from := boxRef{failed, sel.UIDValidity}
	found := make([][]imap.UID, len(reqs))
	var cands []*compReq
	for i, r := range reqs {
		uids, err := s.findByContent(ctx, c, from, r, 0)
		if err != nil {
			return fmt.Errorf("in %q: %w", failed, err)
		}
		found[i] = uids
		if r.copied(from, func(u imap.UID) bool { return slices.Contains(uids, u) }) {
			cands = append(cands, r)
		}
	}
	copied, err := s.copiesFound(ctx, c, from, cands, s.successFolder)
	if err != nil {
		return err
	}
	for i, r := range reqs {
		uids := found[i]
		if len(uids) == 0 {
			continue
		}
		was := r.found // see acting
		r.found = true
		to := s.successFolder(r)
		// The messages the lost COPY copied (their copy found in to) are
		// only deleted: flagged before their COPY, the copy carries it.
		// The others found (the same content come to the folder since)
		// are flagged and moved.
		var done []imap.UID
		if copied[r] {
			done = slices.DeleteFunc(slices.Clone(uids), func(u imap.UID) bool { return !slices.Contains(r.copySent.uids, u) })
			uids = slices.DeleteFunc(uids, func(u imap.UID) bool { return slices.Contains(done, u) })
		}
		if len(done) > 0 {
			set := imap.UIDSetNum(done...)
			if err := deleteMessages(c, s.comp.conn, s.cfg, set); err != nil {
				return fmt.Errorf("delete uid %v in %q, copied to %q before: %w", set, failed, to, err)
			}
		}
		if err := s.moveOutOfFailed(c, from, r, uids, to); err != nil {
			if len(done) == 0 && refusedUnchanged(err) && (!r.seen || !errors.As(err, new(moveError))) {
				r.found = was
			}
			return err
		}
		s.log.Info("a task that succeeded after its dead letter: its mail moved out of the failed folder",
			zap.String("key", r.t.Key), zap.String("message_id", r.t.Header(HeaderMessageID)),
			zap.String("from", failed), zap.String("moved_to", to))
	}
	return nil
}

// moveError is moveOutOfFailed's error from the move itself (the \Seen
// STORE passed).
type moveError struct{ error }

func (e moveError) Unwrap() error { return e.error }

// moveOutOfFailed flags uids, r's mail in the failed folder (from), \Seen
// when r asks for it, and moves them to to. A move without MOVE that
// fails once its COPY was sent is marked on r (see copiesFound).
func (s *Source) moveOutOfFailed(c *imapclient.Client, from boxRef, r *compReq, uids []imap.UID, to string) error {
	if len(uids) == 0 {
		return nil
	}
	set := imap.UIDSetNum(uids...)
	if r.seen {
		s.comp.conn.arm("UID STORE", s.cfg.mailboxBudget(c))
		err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
		if err = s.comp.conn.done(err); err != nil {
			return fmt.Errorf("flag \\Seen uid %v in %q: %w", set, from.name, err)
		}
	}
	if err := moveInto(c, s.comp.conn, s.cfg, set, to, s.comp.folders); err != nil {
		var ce copiedError
		if errors.As(err, &ce) {
			m := ce.since
			m.from, m.uids = from, uids
			r.copySent = &m
		}
		return moveError{fmt.Errorf("move uid %v from %q to %q: %w", set, from.name, to, err)}
	}
	return nil
}
