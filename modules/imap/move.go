package imap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// moveInto moves the messages of set to folder, created when missing
// (see ensureFolder; known caches the folders this connection checked).
// A folder deleted since it was checked (another client cleaning up)
// makes the move fail with NO [TRYCREATE], having moved nothing: it is
// created again and the move made once more, so the completion does not
// fail and wait its back-off for it.
//
// m is c's connection, bounding each command's answer (see meter).
func moveInto(c *imapclient.Client, m *meter, cfg Config, set imap.UIDSet, folder string, known map[string]bool) error {
	if err := ensureFolder(c, m, cfg, folder, known); err != nil {
		return err
	}
	err := move(c, m, cfg, set, folder)
	if isNo(err, imap.ResponseCodeTryCreate) {
		delete(known, folder)
		if err := ensureFolder(c, m, cfg, folder, known); err != nil {
			return err
		}
		err = move(c, m, cfg, set, folder)
	}
	return err
}

// move moves the messages of set to folder: UID MOVE when the server has
// MOVE (or IMAP4rev2). Without it, UID COPY, and only once the server has
// answered OK to the copy, STORE \Deleted and EXPUNGE (UID EXPUNGE with
// UIDPLUS; a plain EXPUNGE also removes what others flagged \Deleted).
//
// go-imap's own fallback for Move sends the three commands at once, so
// a COPY the server refuses (the folder deleted meanwhile, a full quota)
// is still followed by the STORE and the EXPUNGE: the message was deleted
// without its copy. A move that fails once the COPY was sent (its answer
// lost with the connection, or the originals not deleted) returns a
// copiedError: the completion then looks for the copies before it copies
// again (see copiesFound: the completions in the watched mailbox do, and
// those that move a mail out of the failed folder), so that a retry does
// not leave two copies in folder. It looks only at the mail the folder took since the COPY was
// sent (STATUS UIDNEXT asked before it): a mail of the same content there
// before (an earlier delivery's stand-in of the same Message-ID and size,
// the same bytes copied back to the mailbox by a person) is not the copy.
func move(c *imapclient.Client, m *meter, cfg Config, set imap.UIDSet, folder string) error {
	caps := c.Caps()
	if caps.Has(imap.CapMove) {
		m.arm("UID MOVE", cfg.mailboxBudget(c))
		_, err := c.Move(set, folder).Wait()
		return m.done(err)
	}
	var since copyMark
	m.arm("STATUS", cfg.answerBudget())
	st, err := c.Status(folder, &imap.StatusOptions{UIDNext: true, UIDValidity: true}).Wait()
	err = m.done(err)
	var ie *imap.Error
	switch {
	case err == nil:
		since = copyMark{validity: st.UIDValidity, next: st.UIDNext}
	case !errors.As(err, &ie):
		return fmt.Errorf("status %q before the copy (no MOVE): %w", folder, err)
	} // refused: a copy sent now is not looked for (copied again, never lost)
	m.arm("UID COPY", cfg.mailboxBudget(c))
	_, err = c.Copy(set, folder).Wait()
	if err = m.done(err); err != nil {
		err = fmt.Errorf("copy (no MOVE): %w", err)
		if !errors.As(err, &ie) {
			return copiedError{err, since} // sent: made or not, the answer is lost
		}
		return err
	}
	if err := deleteMessages(c, m, cfg, set); err != nil {
		return copiedError{fmt.Errorf("after the copy (no MOVE): %w", err), since}
	}
	return nil
}

// deleteMessages flags the messages of set \Deleted and expunges them
// (UID EXPUNGE with UIDPLUS; a plain EXPUNGE also removes what others
// flagged \Deleted).
func deleteMessages(c *imapclient.Client, m *meter, cfg Config, set imap.UIDSet) error {
	m.arm("UID STORE", cfg.mailboxBudget(c))
	err := m.done(c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close())
	if err != nil {
		return fmt.Errorf("flag \\Deleted: %w", err)
	}
	m.arm("EXPUNGE", cfg.mailboxBudget(c))
	if c.Caps().Has(imap.CapUIDPlus) {
		err = c.UIDExpunge(set).Close()
	} else {
		err = c.Expunge().Close()
	}
	if err = m.done(err); err != nil {
		return fmt.Errorf("expunge: %w", err)
	}
	return nil
}

// copiedError is a move without MOVE that failed after its COPY was sent:
// the messages may have their copies in the folder already, at or above
// since.next.
type copiedError struct {
	err   error
	since copyMark
}

func (e copiedError) Error() string { return e.err.Error() }
func (e copiedError) Unwrap() error { return e.err }

// copyMark is where the copies of a COPY whose answer was lost can be: in
// the request's destination under validity, from UID next (the folder's
// UIDNEXT before the COPY); from is the mailbox the COPY copied from
// (the watched mailbox, or the failed folder: see applyInFailed) under
// the UIDVALIDITY it had, and uids its messages that COPY copied (under
// another UIDVALIDITY they name other mail). A zero next: unknown (the
// server refused the STATUS), nothing is looked for.
type copyMark struct {
	validity uint32
	next     imap.UID
	from     boxRef
	uids     []imap.UID
}

// copySent marks the requests of batch with action a that have one of
// uids among their messages (reqs): a move of uids, out of from, failed
// after its COPY was sent (since).
func copySent(batch []*compReq, reqs [][]imap.UID, a action, uids []imap.UID, from boxRef, since copyMark) {
	for i, r := range batch {
		if r.seen != a.seen || r.moveTo != a.moveTo {
			continue
		}
		sent := slices.DeleteFunc(slices.Clone(reqs[i]), func(u imap.UID) bool { return !slices.Contains(uids, u) })
		if len(sent) > 0 {
			m := since
			m.from, m.uids = from, sent
			r.copySent = &m
		}
	}
}

// copied reports whether an earlier application's move of r's messages
// out of from (the mailbox selected) failed after its COPY was sent, and
// one of those messages is still among uids: its copy may be made
// already (see copiesFound).
func (r *compReq) copied(from boxRef, uids func(imap.UID) bool) bool {
	m := r.copySent
	return m != nil && m.next != 0 && m.from == from && slices.ContainsFunc(m.uids, uids)
}

// copiedBefore returns the messages of the watched mailbox (among
// exists) whose copy an earlier application made already (see
// copiesFound): their originals are then deleted, not copied again.
func (s *Source) copiedBefore(ctx context.Context, c *imapclient.Client, batch []*compReq, exists map[imap.UID]bool) (map[imap.UID]bool, error) {
	from := boxRef{s.cfg.Mailbox, s.comp.validity}
	var cands []*compReq
	for _, r := range batch {
		if r.copied(from, func(u imap.UID) bool { return exists[u] }) {
			cands = append(cands, r)
		}
	}
	found, err := s.copiesFound(ctx, c, from, cands, func(r *compReq) string { return r.moveTo })
	if err != nil {
		return nil, err
	}
	copied := map[imap.UID]bool{}
	for r := range found {
		for _, u := range r.copySent.uids {
			copied[u] = true
		}
	}
	return copied, nil
}

// copiesFound returns the requests among cands (each copied out of from,
// the mailbox selected: see compReq.copied) whose mail their destination
// (dest) took since the COPY was sent: found by content (findByContent
// above the folder's UIDNEXT before the COPY; a COPY is all or nothing,
// so one copy found stands for all the messages of the request it
// copied). It examines each such folder and selects from again; on any
// failure in between (from created again meanwhile included) the
// connection is dropped, so that no later command runs on the wrong
// mailbox by mistake. A stand-in without Message-ID cannot be found so,
// nor a copy into a folder created again since (another UIDVALIDITY): it
// is copied again.
func (s *Source) copiesFound(ctx context.Context, c *imapclient.Client, from boxRef, cands []*compReq, dest func(*compReq) string) (map[*compReq]bool, error) {
	var folders []string
	byFolder := map[string][]*compReq{}
	for _, r := range cands {
		f := dest(r)
		if _, ok := byFolder[f]; !ok {
			folders = append(folders, f)
		}
		byFolder[f] = append(byFolder[f], r)
	}
	if len(folders) == 0 {
		return nil, nil
	}
	found := map[*compReq]bool{}
	err := func() error {
		for _, f := range folders {
			s.comp.conn.arm("EXAMINE", s.cfg.answerBudget())
			sel, err := selectWait(c, f, &imap.SelectOptions{ReadOnly: true})
			err = s.comp.conn.done(err)
			if isNo(err, "", imap.ResponseCodeNonExistent, imap.ResponseCodeCannot) {
				continue // no folder: no copy
			}
			if err != nil {
				return fmt.Errorf("examine %q: %w", f, err)
			}
			for _, r := range byFolder[f] {
				m := r.copySent
				if sel.UIDValidity != m.validity {
					continue // created again since: the copy, if made, went with the old one
				}
				uids, err := s.findByContent(ctx, c, boxRef{f, sel.UIDValidity}, r, m.next)
				if err != nil {
					return fmt.Errorf("in %q: %w", f, err)
				}
				if len(uids) > 0 {
					found[r] = true
				}
			}
		}
		s.comp.conn.arm("SELECT", s.cfg.answerBudget())
		sel, err := selectWait(c, from.name, nil)
		if err = s.comp.conn.done(err); err != nil {
			return fmt.Errorf("select %q again: %w", from.name, err)
		}
		if sel.UIDValidity != from.validity {
			return fmt.Errorf("select %q again: UIDVALIDITY changed from %d to %d", from.name, from.validity, sel.UIDValidity)
		}
		return nil
	}()
	if err != nil {
		s.comp.reset()
		return nil, err
	}
	return found, nil
}

// ensureFolder creates folder unless it exists. known caches what this
// connection already checked (nil: no cache). A name LIST shows as
// \Noselect or \NonExistent (the parent of a subfolder, a folder deleted
// with children) cannot take mail: it is created too. m is c's
// connection, bounding each answer (see meter).
func ensureFolder(c *imapclient.Client, m *meter, cfg Config, folder string, known map[string]bool) error {
	if known[folder] {
		return nil
	}
	m.arm("LIST", cfg.answerBudget())
	list, err := c.List("", folder, nil).Collect()
	if err = m.done(err); err != nil {
		return fmt.Errorf("imap: list %q: %w", folder, err)
	}
	if !selectable(list, folder) {
		m.arm("CREATE", cfg.answerBudget())
		if err := m.done(c.Create(folder, nil).Wait()); err != nil {
			var ie *imap.Error
			if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAlreadyExists {
				return fmt.Errorf("imap: create %q: %w", folder, err)
			}
		}
	}
	if known != nil {
		known[folder] = true
	}
	return nil
}

// selectable reports whether list, LIST's answer for folder, shows folder
// as a mailbox that can hold mail.
func selectable(list []*imap.ListData, folder string) bool {
	for _, l := range list {
		same := l.Mailbox == folder || strings.EqualFold(l.Mailbox, "INBOX") && strings.EqualFold(folder, "INBOX")
		if same && !slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) && !slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
			return true
		}
	}
	return false
}
