package imap

import (
	"context"
	"fmt"
	"io"
	"maps"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// fetchKind is what a fetch of mail asks for: its metadata (envelope,
// size, date) or its body. It names the fetch a connection ended on
// (suspects), a mail was refused on (settleRefused), in the logs and the
// stand-ins' reasons.
type fetchKind string

const (
	fetchMetadata fetchKind = "metadata"
	fetchBody     fetchKind = "body"
)

// fetchMeta fetches the metadata of uids. When the server refuses the
// lot (see refused), it asks for each message on its own and hands those
// it refuses to settleRefused: held, then given up, when it returned
// another's metadata and a body in the session (see metadataProves;
// gone, those returned for their stand-ins: only their UIDs are known), else
// the error (the session fails and is retried). When the connection
// ended during such a fetch, the next sessions ask for each of them on
// its own too (see poison.go). When the server returned no metadata of
// uids, refusing some, and next (a chunk follows), those are held and
// returned, with the lot given up already (skipLost), in a refusedGroup:
// the scan settles them with the next chunk's answers, as it does a
// chunk whose every body was refused (a chunk of one is alone whatever
// the server does).
func (s *Source) fetchMeta(ctx context.Context, c *imapclient.Client, uids []imap.UID, next bool) ([]meta, []refusal, error) {
	var refs, lost []refusal
	var metas []meta
	suspect := s.anySuspect(uids) // see poison.go
	alone := suspect
	if !alone {
		var err error
		metas, err = s.fetchMetaOf(c, uids)
		if s.suspectAll(ctx, uids, fetchMetadata, err) || !refused(err) {
			return metas, nil, err
		}
		metas = nil
		if len(uids) == 1 {
			refs = append(refs, refusal{m: meta{uid: uids[0]}, err: err}) // asking again is the same question
		}
		alone = len(uids) > 1
	}
	if alone {
		if suspect {
			if err := s.proveServing(ctx, c, uids, fetchMetadata); err != nil {
				return nil, nil, err
			}
		}
		for _, u := range s.lostLast(uids) {
			if r, skip, standIn := s.skipLost(meta{uid: u}, fetchMetadata); skip {
				if standIn {
					lost = append(lost, r)
				}
				continue
			}
			if err := s.proveBefore(ctx, c, u, metas); err != nil {
				return nil, nil, err
			}
			m, err := s.fetchMetaOf(c, []imap.UID{u})
			if refused(err) {
				refs = append(refs, refusal{m: meta{uid: u}, err: err})
				continue
			}
			if err != nil {
				s.lostAlone(ctx, meta{uid: u}, fetchMetadata, err)
				return nil, nil, err
			}
			metas = append(metas, m...)
		}
	}
	if len(metas) == 0 && len(refs) > 0 && next {
		for _, r := range refs {
			s.hold(r.m.uid)
		}
		return nil, lost, refusedGroup{refs: refs, what: fetchMetadata}
	}
	returned, err := s.metadataProves(ctx, c, metas, refs)
	if err != nil {
		return nil, nil, err
	}
	given, err := s.settleRefused(refs, returned, fetchMetadata, s.controlOn(ctx, c))
	if err != nil {
		return nil, nil, err
	}
	return metas, append(lost, given...), nil
}

// fetchMetaOf fetches the metadata of uids under CommandTimeout, its
// answer bounded by answerBudget (see meter): the client reads an
// envelope's strings into memory whole.
func (s *Source) fetchMetaOf(c *imapclient.Client, uids []imap.UID) ([]meta, error) {
	w := s.guard(c)
	s.conn.arm("metadata fetch", s.cfg.answerBudget())
	bufs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
		UID: true, RFC822Size: true, Envelope: true, InternalDate: true,
	}).Collect()
	if err = s.conn.done(w.done(err)); err != nil {
		return nil, fmt.Errorf("imap: fetch metadata: %w", err)
	}
	metas := make([]meta, 0, len(bufs))
	for _, b := range bufs {
		if b.UID == 0 {
			continue
		}
		m := meta{uid: b.UID, size: b.RFC822Size, date: b.InternalDate}
		if b.Envelope != nil {
			m.msgID = usableMessageID(b.Envelope.MessageID)
		}
		metas = append(metas, m)
	}
	return metas, nil
}

// fetchGroup fetches the bodies of group, keyed by UID, and the sizes of
// those whose body is above MaxMessageSize (not read). When the server
// refuses the group (a NO that is not a temporary refusal), each message
// is fetched on its own. If the server returns at least one, its
// refusals are evidence about the others: those are counted, held, and
// given up once due, returned (refs) for their stand-ins (see
// settleRefused, refusedTask). If it returns none (a group of one
// included; the bodies of mails of 0 bytes are no answer, see
// hasContent, and are returned beside the error), the refusals are
// returned as a refusedGroup error, settled by processChunk with the
// other groups' answers. A body returned with
// nothing in it while the message's RFC822.SIZE is above 0 is refused so
// too (see returnedEmpty). A group the connection ended on is fetched
// one by one in the next sessions (see poison.go).
func (s *Source) fetchGroup(ctx context.Context, c *imapclient.Client, group []meta) (bodies map[imap.UID][]byte, oversize map[imap.UID]int64, refs []refusal, err error) {
	uids := make([]imap.UID, len(group))
	for i, m := range group {
		uids[i] = m.uid
	}
	var lost []refusal
	suspect := s.anySuspect(uids) // see poison.go
	alone := suspect
	if !alone {
		bodies, oversize, err = s.fetchBodies(c, group)
		switch {
		case s.suspectAll(ctx, uids, fetchBody, err) || err != nil && !refused(err):
			return nil, nil, nil, err
		case err == nil:
			if refs = returnedEmpty(group, bodies); len(refs) == 0 {
				s.fetchedFine(bodies, oversize)
				return bodies, oversize, nil, nil
			}
		default:
			bodies, oversize = nil, nil
			if len(group) == 1 {
				refs = append(refs, refusal{m: group[0], err: err}) // asking again is the same question
			}
			alone = len(group) > 1
		}
	}
	if bodies == nil {
		bodies, oversize = map[imap.UID][]byte{}, map[imap.UID]int64{}
	}
	if alone {
		if suspect {
			if err := s.proveServing(ctx, c, uids, fetchBody); err != nil {
				return nil, nil, nil, err
			}
		}
		order := s.lostLast(uids)
		byUID := make(map[imap.UID]meta, len(group))
		for _, m := range group {
			byUID[m.uid] = m
		}
		for _, u := range order {
			m := byUID[u]
			if r, skip, standIn := s.skipLost(m, fetchBody); skip {
				if standIn {
					lost = append(lost, r)
				}
				continue
			}
			b, o, err := s.fetchBodies(c, []meta{m})
			if refused(err) {
				refs = append(refs, refusal{m: m, err: err})
				continue
			}
			if err != nil {
				s.lostAlone(ctx, m, fetchBody, err)
				return nil, nil, nil, err
			}
			refs = append(refs, returnedEmpty([]meta{m}, b)...)
			maps.Copy(bodies, b)
			maps.Copy(oversize, o)
		}
	}
	s.fetchedFine(bodies, oversize)
	if !hasContent(bodies, oversize) && len(refs) > 0 {
		// Nothing returned: whether the server fails on these messages or
		// as a whole is told by the other groups of the chunk (see
		// processChunk). The body of a mail of 0 bytes is no sign the
		// server reads its store (see hasContent): a server answering
		// every body empty would have the group's other mails given up
		// for it. Such bodies are returned with the error, to be
		// emitted all the same (see emitGroup).
		return bodies, nil, nil, refusedGroup{refs: refs, what: fetchBody, lost: lost}
	}
	given, err := s.settleRefused(refs, true, fetchBody, s.controlOn(ctx, c))
	if err != nil {
		return nil, nil, nil, err
	}
	return bodies, oversize, append(lost, given...), nil
}

// returnedEmpty takes out of bodies those of group the server returned
// with nothing in them while their RFC822.SIZE says they hold something,
// and returns them as refused (see settleRefused): such a body is no
// body (a server whose store fails may answer so), and emitted it would
// be handled as an empty mail, its content lost. One whose size is 0
// is returned as it is.
func returnedEmpty(group []meta, bodies map[imap.UID][]byte) []refusal {
	var refs []refusal
	for _, m := range group {
		if b, ok := bodies[m.uid]; ok && len(b) == 0 && m.size > 0 {
			delete(bodies, m.uid)
			refs = append(refs, refusal{m: m, err: fmt.Errorf("the server returned the message empty, its RFC822.SIZE being %d bytes", m.size)})
		}
	}
	return refs
}

// refusedGroup is fetchGroup's error for a group of which the server
// returned no message, each refused: processChunk settles refs (see
// settleRefused) once it knows whether the server returned the mail of
// another group of the chunk. A group is alone (a group of one, a mail
// whose neighbour does not fit beside it within MaxBatchBytes) whatever
// the server does: were its refusal taken for the server failing as a
// whole, the session would fail on it for ever, the mail after it never
// emitted. lost is the group's messages given up already (skipLost),
// their stand-ins to emit. what is the fetch refused ("metadata"
// or "body").
type refusedGroup struct {
	refs, lost []refusal
	what       fetchKind
}

func (e refusedGroup) Error() string {
	return fmt.Sprintf("imap: fetch %s: the server refused each of %d messages of a group", e.what, len(e.refs))
}

// fetchedFine forgets the refusals counted against the messages whose
// body the server returned.
func (s *Source) fetchedFine(bodies map[imap.UID][]byte, oversize map[imap.UID]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for u := range bodies {
		delete(s.refusedAlone, u)
	}
	for u := range oversize {
		delete(s.refusedAlone, u)
	}
}

// fetchBodies fetches BODY.PEEK[] of group under CommandTimeout (counted
// from the last progress) and within CommandTimeout plus the bytes asked
// for (their RFC822.SIZE, each at most MaxMessageSize) at minBodyRate
// overall, whatever the progress (see guardBody).
func (s *Source) fetchBodies(c *imapclient.Client, group []meta) (map[imap.UID][]byte, map[imap.UID]int64, error) {
	uids := make([]imap.UID, len(group))
	var want int64
	for i, m := range group {
		uids[i] = m.uid
		want += min(max(m.size, 0), s.cfg.MaxMessageSize)
	}
	w := s.guardBody(c, want)
	bodies, oversize, err := fetchBodies(c, s.conn, s.cfg, imap.UIDSetNum(uids...), &imap.FetchItemBodySection{Peek: true}, s.cfg.MaxMessageSize, w)
	if err = w.done(err); err != nil {
		return nil, nil, fmt.Errorf("imap: fetch bodies: %w", err)
	}
	if hasContent(bodies, oversize) {
		s.serving()
	}
	return bodies, oversize, nil
}

// hasContent reports whether the server returned a body with something
// in it: a body it answered with nothing in it (BODY[] "") is no sign
// that it reads its store, and proves nothing about the mail around it
// (see servedLocked, settleRefused).
func hasContent(bodies map[imap.UID][]byte, oversize map[imap.UID]int64) bool {
	if len(oversize) > 0 {
		return true
	}
	for _, b := range bodies {
		if len(b) > 0 {
			return true
		}
	}
	return false
}

// fetchBodies fetches the given section of every message in set, keyed by
// UID, reading no literal above limit: those are drained unread and
// reported in oversize with their size (the server's RFC822.SIZE is not
// trusted to bound memory). w, when not nil, is kicked as data arrives,
// within its overall deadline (see guardBody).
// The rest of the answer (a body sent as a quoted string, which go-imap
// reads whole; items not asked for) is bounded by cfg.answerBudget on
// m, c's connection (see meter).
//
// It does not use FetchCommand.Collect: in go-imap v2.0.0-beta.8 a
// literal cut mid-read (connection closed) ends with a plain io.EOF, so it
// looks complete, and is then read again by the library's discard while
// its decoder goroutine already reads on (a data race). This checks each
// literal's length and, on a short or failed read, closes the client and
// abandons the command, so nothing truncated is emitted and the
// connection is never read from two goroutines.
func fetchBodies(c *imapclient.Client, m *meter, cfg Config, set imap.UIDSet, section *imap.FetchItemBodySection, limit int64, w *watchdog) (bodies map[imap.UID][]byte, oversize map[imap.UID]int64, err error) {
	m.arm("body fetch", cfg.answerBudget())
	defer func() {
		if err = m.done(err); err != nil {
			bodies, oversize = nil, nil
		}
	}()
	cmd := c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}})
	bodies, oversize = map[imap.UID][]byte{}, map[imap.UID]int64{}
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		w.kick()
		var uid imap.UID
		var body []byte
		big := int64(-1)
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					continue
				}
				size := it.Literal.Size()
				m.grant(size) // read below, kept up to limit
				r := progressReader{r: it.Literal, w: w}
				var n int64
				if size > limit {
					n, err = io.Copy(io.Discard, r)
					big = size
				} else {
					body, err = io.ReadAll(io.LimitReader(r, size))
					n = int64(len(body))
				}
				if err == nil && n != size {
					// The library reports a connection closed mid-literal
					// as a clean EOF: never emit a truncated message.
					err = fmt.Errorf("literal truncated at %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
				}
				if err != nil {
					_ = c.Close()
					return nil, nil, fmt.Errorf("read literal: %w", err)
				}
			}
		}
		switch {
		case uid == 0:
		case big >= 0:
			oversize[uid] = big
		case body != nil:
			bodies[uid] = body
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, nil, err
	}
	return bodies, oversize, nil
}
