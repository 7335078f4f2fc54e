package imap

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"
)

// locate returns the candidate UIDs of the message behind t in the
// selected mailbox: its UID while UIDVALIDITY matches (the caller checks
// that it still exists), else the messages found by content (see
// findByContent).
func (s *Source) locate(ctx context.Context, c *imapclient.Client, box boxRef, r *compReq) ([]imap.UID, error) {
	t := r.t
	uid, errU := strconv.ParseUint(t.Header(HeaderUID), 10, 32)
	v, errV := strconv.ParseUint(t.Header(HeaderUIDValidity), 10, 32)
	if errU == nil && errV == nil && uid != 0 && uint32(v) == box.validity {
		return []imap.UID{imap.UID(uid)}, nil
	}
	if t.Header(HeaderMessageID) == "" && r.size == 0 {
		s.log.Warn("completion: UIDVALIDITY changed and the stand-in has no Message-ID: cannot find its message",
			zap.String("key", t.Key), zap.String("uid", t.Header(HeaderUID)))
		return nil, nil
	}
	return s.findByContent(ctx, c, box, r, 0)
}

// findByContent returns the UIDs, in the selected mailbox, of the
// messages with exactly r's Message-ID and, when the task carried its
// payload, the same bytes (by hash). For a stand-in without payload it
// is the one message of its Message-ID and size (imap-size), none when
// several match. (A HEADER search matches substrings: <1@example.com>
// finds <11@example.com> too; and two different messages may share a
// Message-ID.) A task with its payload whose message the Message-ID
// cannot find (it has none, or one the server's HEADER search may not
// match as it is: see searchable) is looked for by size and content
// (findBySize). A non-zero from looks only at the messages from that UID
// up (those a folder took since its UIDNEXT was from).
func (s *Source) findByContent(ctx context.Context, c *imapclient.Client, box boxRef, r *compReq, from imap.UID) ([]imap.UID, error) {
	t := r.t
	msgID := t.Header(HeaderMessageID)
	if msgID == "" {
		return s.findBySize(ctx, c, box, r, from)
	}
	crit := &imap.SearchCriteria{
		Header:  []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: msgID}},
		NotFlag: []imap.Flag{imap.FlagDeleted},
	}
	cands, err := s.searchFrom(c, crit, from)
	if err != nil {
		return nil, fmt.Errorf("uid search: %w", err)
	}
	if len(cands) == 0 {
		if r.size > 0 && !searchable(msgID) {
			return s.findBySize(ctx, c, box, r, from)
		}
		return nil, nil
	}
	var bufs []*imapclient.FetchMessageBuffer
	err = s.fetchCarefully(ctx, c, box, cands, fetchMetadata, func(uids []imap.UID) error {
		s.comp.conn.arm("metadata fetch", s.cfg.answerBudget()) // see meter
		b, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, Envelope: true, RFC822Size: true}).Collect()
		bufs = append(bufs, b...)
		return s.comp.conn.done(err)
	})
	if err != nil {
		return nil, fmt.Errorf("fetch envelopes: %w", err)
	}
	// A stand-in (r.size 0: an oversized or queue-refused mail, without
	// its content) has only the size the server reported (imap-size) to
	// tell its message from others that reuse the Message-ID.
	wantSize, errS := strconv.ParseInt(t.Header(HeaderSize), 10, 64)
	var exact []imap.UID
	sizes := map[imap.UID]int64{}
	for _, b := range bufs {
		if b.UID != 0 && b.Envelope != nil && b.Envelope.MessageID == msgID &&
			(r.size > 0 || errS != nil || b.RFC822Size == wantSize) {
			exact = append(exact, b.UID)
			sizes[b.UID] = b.RFC822Size
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
	same, err := s.sameContent(ctx, c, box, r, exact, sizes)
	if err != nil || len(same) > 0 || searchable(msgID) {
		return same, err
	}
	return s.findBySize(ctx, c, box, r, from)
}

// errReturnedEmpty is a lookup's fetch of bodies that the server
// answered with nothing in one of them while its RFC822.SIZE is above 0
// (see sameContent).
var errReturnedEmpty = errors.New("the server returned a body empty while its RFC822.SIZE is above 0")

// searchFrom runs the UID SEARCH crit on c, the completions'
// connection, limited to the UIDs from from up when from is not zero,
// and returns the UIDs found.
func (s *Source) searchFrom(c *imapclient.Client, crit *imap.SearchCriteria, from imap.UID) ([]imap.UID, error) {
	if from > 0 {
		crit.UID = []imap.UIDSet{{{Start: from, Stop: 0}}}
	}
	s.comp.conn.arm("UID SEARCH", s.cfg.mailboxBudget(c))
	data, err := c.UIDSearch(crit, nil).Wait()
	if err = s.comp.conn.done(err); err != nil {
		return nil, err
	}
	uids, err := searchUIDs(c, data)
	if err != nil {
		return nil, err
	}
	// "n:*" matches the highest UID even when it is below n.
	return slices.DeleteFunc(uids, func(u imap.UID) bool { return u < from }), nil
}

// searchable reports whether a HEADER search finds msgID as it is: it is
// ASCII without "=?" (a server decodes RFC 2047 encoded words in a header
// before it compares, and compares non-ASCII text in a charset of its
// choosing). A message of such an id that the search does not find is not
// there; any other is looked for by size too, which reads more.
func searchable(msgID string) bool {
	for i := 0; i < len(msgID); i++ {
		if msgID[i] >= 0x80 {
			return false
		}
	}
	return !strings.Contains(msgID, "=?")
}

// findBySize returns the UIDs of the messages whose bytes are r's
// payload, among those whose RFC822.SIZE is from the payload's size to
// twice it (a server may count a bare LF as CRLF), from UID from up when
// it is not zero.
func (s *Source) findBySize(ctx context.Context, c *imapclient.Client, box boxRef, r *compReq, from imap.UID) ([]imap.UID, error) {
	if r.size == 0 {
		return nil, nil
	}
	cands, err := s.searchFrom(c, &imap.SearchCriteria{
		Larger:  int64(r.size) - 1,
		Smaller: 2*int64(r.size) + 1,
		NotFlag: []imap.Flag{imap.FlagDeleted},
	}, from)
	if err != nil {
		return nil, fmt.Errorf("uid search by size: %w", err)
	}
	return s.sameContent(ctx, c, box, r, cands, nil) // each above 0 bytes
}

// sameContent returns those of uids whose bytes are r's payload (by
// hash). Bodies larger than the payload are not read; those read are
// fetched in groups of at most MaxBatchBytes, or alone (see
// fetchCarefully). A body the server returns with nothing in it while
// the message's RFC822.SIZE (sizes; nil: each above 0) is above 0 is no
// answer, as for the emission (see returnedEmpty): not taken for another
// mail's, which would leave the mail looked for where it is (handled
// again), in the failed folder, or copied twice, but errReturnedEmpty,
// counted as a fetch that ended the connection (see fetchCarefully). A
// body returned with something in it proves, for the attempt, that the
// server serves the mailbox (see completionSuspects.served).
func (s *Source) sameContent(ctx context.Context, c *imapclient.Client, box boxRef, r *compReq, uids []imap.UID, sizes map[imap.UID]int64) ([]imap.UID, error) {
	per := max(1, int(s.cfg.MaxBatchBytes/int64(r.size)))
	var same []imap.UID
	for i := 0; i < len(uids); i += per {
		group := uids[i:min(i+per, len(uids))]
		err := s.fetchCarefully(ctx, c, box, group, fetchBody, func(uids []imap.UID) error {
			bodies, larger, err := fetchBodies(c, s.comp.conn, s.cfg, imap.UIDSetNum(uids...), &imap.FetchItemBodySection{Peek: true}, int64(r.size), nil)
			var empty []imap.UID
			for _, u := range uids {
				b, ok := bodies[u]
				if ok && len(b) == r.size && sha256.Sum256(b) == r.sum {
					same = append(same, u)
				}
				if ok && len(b) == 0 && (sizes == nil || sizes[u] > 0) {
					empty = append(empty, u)
				}
			}
			if err == nil && len(empty) > 0 {
				return fmt.Errorf("uid %v: %w", imap.UIDSetNum(empty...), errReturnedEmpty)
			}
			if err == nil && hasContent(bodies, larger) {
				s.comp.suspects.served(box) // see fetchCarefully
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("fetch bodies: %w", err)
		}
	}
	return same, nil
}
