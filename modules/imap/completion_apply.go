package imap

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"
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
		c, err := dial(ctx, s.cfg, nil, nil)
		if err != nil {
			return sessionError{errFromFatal(err)}
		}
		cp.c = c
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
	sel, err := c.Select(s.cfg.Mailbox, nil).Wait()
	if err != nil {
		cp.reset()
		return sessionError{fmt.Errorf("select %q: %w", s.cfg.Mailbox, err)}
	}
	cp.validity = sel.UIDValidity

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
		uids, err := s.locate(c, cp.validity, r)
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
		data, err := c.UIDSearch(&imap.SearchCriteria{
			UID:     []imap.UIDSet{imap.UIDSetNum(all...)},
			NotFlag: []imap.Flag{imap.FlagDeleted},
		}, nil).Wait()
		if err != nil {
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
	for _, a := range order {
		var uids []imap.UID
		for _, u := range groups[a] {
			if exists[u] {
				uids = append(uids, u)
				delete(exists, u) // one action per message
			}
		}
		if len(uids) == 0 {
			continue
		}
		set := imap.UIDSetNum(uids...)
		if a.seen {
			err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
			if err != nil {
				return fmt.Errorf("flag \\Seen uid %v: %w", set, err)
			}
		}
		if a.moveTo != "" {
			if err := ensureFolder(c, a.moveTo, cp.folders); err != nil {
				return err
			}
			if err := move(c, set, a.moveTo); err != nil {
				return fmt.Errorf("move uid %v to %q: %w", set, a.moveTo, err)
			}
		}
	}
	return s.fromFailed(c, gone)
}

// locate returns the candidate UIDs of the message behind t in the
// selected mailbox: its UID while UIDVALIDITY matches (the caller checks
// that it still exists), else the messages with exactly its Message-ID
// and, when the task carried its payload, the same bytes (by hash); for
// a stand-in without payload, the one message of its size (imap-size),
// none when several match. (A HEADER search matches substrings:
// <1@example.com> finds <11@example.com> too; and two different
// messages may share a Message-ID.)
func (s *Source) locate(c *imapclient.Client, validity uint32, r *compReq) ([]imap.UID, error) {
	t := r.t
	uid, errU := strconv.ParseUint(t.Header(HeaderUID), 10, 32)
	v, errV := strconv.ParseUint(t.Header(HeaderUIDValidity), 10, 32)
	if errU == nil && errV == nil && uid != 0 && uint32(v) == validity {
		return []imap.UID{imap.UID(uid)}, nil
	}
	if t.Header(HeaderMessageID) == "" {
		s.log.Warn("completion: UIDVALIDITY changed and the message has no Message-ID: cannot find it",
			zap.String("key", t.Key), zap.String("uid", t.Header(HeaderUID)))
		return nil, nil
	}
	return s.findByContent(c, r)
}

// findByContent returns the UIDs, in the selected mailbox, of the
// messages with exactly r's Message-ID (not empty) and, when the task
// carried its payload, the same bytes; for a stand-in, see locate.
func (s *Source) findByContent(c *imapclient.Client, r *compReq) ([]imap.UID, error) {
	t := r.t
	msgID := t.Header(HeaderMessageID)
	data, err := c.UIDSearch(&imap.SearchCriteria{
		Header:  []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: msgID}},
		NotFlag: []imap.Flag{imap.FlagDeleted},
	}, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("uid search: %w", err)
	}
	cands, err := searchUIDs(c, data)
	if err != nil {
		return nil, fmt.Errorf("uid search: %w", err)
	}
	if len(cands) == 0 {
		return nil, nil
	}
	bufs, err := c.Fetch(imap.UIDSetNum(cands...), &imap.FetchOptions{UID: true, Envelope: true, RFC822Size: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetch envelopes: %w", err)
	}
	// A stand-in (r.size 0: an oversized or queue-refused mail, without
	// its content) has only the size the server reported (imap-size) to
	// tell its message from others that reuse the Message-ID.
	wantSize, errS := strconv.ParseInt(t.Header(HeaderSize), 10, 64)
	var exact []imap.UID
	for _, b := range bufs {
		if b.UID != 0 && b.Envelope != nil && b.Envelope.MessageID == msgID &&
			(r.size > 0 || errS != nil || b.RFC822Size == wantSize) {
			exact = append(exact, b.UID)
		}
	}
	if r.size == 0 {
		if len(exact) > 1 {
			// Several mails of the stand-in's id and size: which one it
			// stood for is unknown, and moving all of them would move
			// mails that were never handled. None is moved; they stay in
			// the mailbox, where the scan under the new UIDVALIDITY
			// emits them again.
			s.log.Warn("completion: UIDVALIDITY changed and several mails match the stand-in's Message-ID and size: none is moved",
				zap.String("key", t.Key), zap.String("message_id", msgID), zap.Int("candidates", len(exact)))
			return nil, nil
		}
		return exact, nil
	}
	if len(exact) == 0 {
		return exact, nil
	}
	// Bodies larger than the payload cannot be it: they are not read.
	bodies, _, err := fetchBodies(c, imap.UIDSetNum(exact...), &imap.FetchItemBodySection{Peek: true}, int64(r.size), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch bodies: %w", err)
	}
	var same []imap.UID
	for _, u := range exact {
		if b, ok := bodies[u]; ok && len(b) == r.size && sha256.Sum256(b) == r.sum {
			same = append(same, u)
		}
	}
	return same, nil
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
