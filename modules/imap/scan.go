package imap

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// scan searches for messages above the cursor (the whole mailbox on a
// reconcile pass, see reconcile.go) and emits them in batches.
func (s *Source) scan(ctx context.Context, c *imapclient.Client, emit source.Emitter) error {
	s.reapStale(time.Now())
	full := s.reconcileDue(time.Now())
	// A server shows a session the mail delivered since its last command
	// only when it syncs; a search alone would see it one poll late. A
	// reconcile pass syncs by selecting the mailbox again, which also
	// sees a mailbox deleted and created again under its name (a new
	// UIDVALIDITY): a session that had it selected goes on seeing the
	// deleted one (Dovecot answers NOOP, SEARCH and FETCH there from the
	// old view), and the new one's mail would never be found.
	searched := time.Now()
	if full {
		w := s.guard(c)
		s.conn.arm("SELECT", s.cfg.answerBudget())
		sel, err := selectWait(c, s.cfg.Mailbox, nil)
		if err = s.conn.done(w.done(err)); err != nil {
			return fmt.Errorf("imap: select %q again: %w", s.cfg.Mailbox, err)
		}
		s.selected(sel.UIDValidity)
	} else {
		w := s.guard(c)
		s.conn.arm("NOOP", s.cfg.mailboxBudget(c))
		if err := s.conn.done(w.done(c.Noop().Wait())); err != nil {
			return fmt.Errorf("imap: noop: %w", err)
		}
	}
	s.mu.Lock()
	if s.rescan != 0 && s.rescan <= s.lastUID {
		s.lastUID = s.rescan - 1
		s.st.LastUID = uint32(s.lastUID)
	}
	s.rescan = 0
	last := s.lastUID
	s.mu.Unlock()
	from := last + 1
	if full {
		from = 1
	}
	crit := &imap.SearchCriteria{
		UID:     []imap.UIDSet{{{Start: from, Stop: 0}}},
		NotFlag: []imap.Flag{imap.FlagDeleted},
	}
	if *s.cfg.OnSuccess.MoveTo == "" {
		// Processed mail stays in the mailbox, flagged \Seen.
		crit.NotFlag = append(crit.NotFlag, imap.FlagSeen)
	}
	w := s.guard(c)
	s.conn.arm("UID SEARCH", s.cfg.mailboxBudget(c))
	data, err := c.UIDSearch(crit, nil).Wait()
	if err = s.conn.done(w.done(err)); err != nil {
		return fmt.Errorf("imap: uid search: %w", err)
	}
	found, err := searchUIDs(c, data)
	if err != nil {
		return fmt.Errorf("imap: uid search: %w", err)
	}
	var uids, below []imap.UID
	for _, u := range found {
		if u > last { // "n:*" matches the highest UID even when it is below n
			uids = append(uids, u)
		} else if full {
			below = append(below, u)
		}
	}
	// Above a cursor moved back (a message emitted again, see reapStale
	// and Source.rescan) may be mail left in the mailbox on purpose.
	uids = s.withoutAside(uids)
	slices.Sort(below)
	if full {
		s.forgetGone(found, searched)
	}
	if again := s.unfinished(below); len(again) > 0 {
		uids = append(again, uids...)
	}
	slices.Sort(uids)
	// A chunk whose every body, or every metadata, the server refused
	// (see refusedGroup) is judged by the next chunk of which the server
	// returns a body, as a group is by the others of its chunk: a chunk
	// of one (batch_size 1) is alone whatever the server does, and so may
	// be the next (another mail refused, or one above MaxMessageSize,
	// never fetched): were those taken for the server failing as a whole,
	// the session would fail on them for ever, the mail after them never
	// emitted. The last chunk settles them with its answer. A second
	// chunk refused so in a row has the server asked once for another
	// message (see control, asked for no evidence here): refused too, the
	// server fails as a whole and the session fails there, rather than
	// asking for every message of the mailbox on its own first.
	var deferred []refusedGroup
	var serving bool // the control returned another message in this scan
	for i := 0; i < len(uids); i += s.cfg.BatchSize {
		next := i+s.cfg.BatchSize < len(uids)
		returned, err := s.processChunk(ctx, c, emit, uids[i:min(i+s.cfg.BatchSize, len(uids))], next)
		var rg refusedGroup
		if errors.As(err, &rg) {
			deferred = append(deferred, rg)
			if len(deferred) > 1 && !serving {
				if err := s.serverReturns(ctx, c, deferred, rg.what); err != nil {
					return err
				}
				serving = true
			}
			continue
		}
		if err != nil {
			return err
		}
		if len(deferred) == 0 || !returned && next {
			continue
		}
		for _, d := range deferred {
			given, err := s.settleRefused(d.refs, returned, d.what, s.controlOn(ctx, c))
			if err != nil {
				return err
			}
			ms := make([]meta, len(given))
			for i, r := range given {
				ms[i] = r.m
			}
			if err := s.emitMessages(ctx, emit, ms, nil, given); err != nil {
				return err
			}
		}
		deferred = nil
	}
	s.mu.Lock()
	s.st.LastPoll = time.Now()
	s.progressedLocked()
	s.mu.Unlock()
	return nil
}

// processChunk fetches the metadata of up to BatchSize UIDs, fetches the
// bodies (BODY.PEEK[]: nothing is flagged) in groups bounded by
// MaxBatchBytes and emits each group. A message above MaxMessageSize is
// not fetched: its stand-in is emitted instead (see oversizedTask).
// Messages the server refuses to return are given up, their stand-ins
// emitted (see refusedTask), or the chunk fails (see fetchGroup); the
// cursor moves past the chunk only when it did not. When the server
// returned no body of the chunk, refusing some, and next (a chunk
// follows), those are held (scanned again) and returned, once the rest
// of the chunk is done, in a refusedGroup: the scan settles them with the
// next chunk's answers; so are the chunk's messages whose metadata was
// refused when none was returned (see fetchMeta). returned reports
// whether the server returned a body of the chunk.
func (s *Source) processChunk(ctx context.Context, c *imapclient.Client, emit source.Emitter, uids []imap.UID, next bool) (returned bool, err error) {
	metas, refs, err := s.fetchMeta(ctx, c, uids, next)
	var deferred *refusedGroup
	if rg := (refusedGroup{}); errors.As(err, &rg) {
		deferred, err = &rg, nil // the chunk's metadata, all refused: see fetchMeta
	}
	if err != nil {
		return false, err
	}
	slices.SortFunc(metas, func(a, b meta) int { return cmp.Compare(a.uid, b.uid) })

	var group, big []meta
	var groupBytes int64
	// A group whose every message the server refused (see refusedGroup)
	// waits for the others: if the server returned the mail of another
	// group of the chunk, the refusals are evidence about the refused
	// messages; if not, it may be failing as a whole (see settleRefused).
	var pending, lost []refusal
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		sent, err := s.emitGroup(ctx, c, emit, group)
		group, groupBytes = nil, 0
		var rg refusedGroup
		if errors.As(err, &rg) {
			pending = append(pending, rg.refs...)
			lost = append(lost, rg.lost...)
			return nil
		}
		returned = returned || sent
		return err
	}
	for _, m := range metas {
		if m.size > s.cfg.MaxMessageSize {
			big = append(big, m)
			continue
		}
		if len(group) > 0 && groupBytes+m.size > s.cfg.MaxBatchBytes {
			if err := flush(); err != nil {
				return returned, err
			}
		}
		group = append(group, m)
		groupBytes += m.size
	}
	if err := flush(); err != nil {
		return returned, err
	}
	if len(pending) > 0 && !returned && next {
		deferred = &refusedGroup{refs: pending, what: fetchBody}
		for _, r := range pending {
			s.hold(r.m.uid)
		}
	} else {
		given, err := s.settleRefused(pending, returned, fetchBody, s.controlOn(ctx, c))
		if err != nil {
			return returned, err
		}
		refs = append(refs, given...)
	}
	refs = append(refs, lost...)
	for _, r := range refs {
		big = append(big, r.m)
	}
	if err := s.emitMessages(ctx, emit, big, nil, refs); err != nil {
		return returned, err
	}
	s.mu.Lock()
	if hi := uids[len(uids)-1]; hi > s.lastUID {
		s.lastUID = hi
		s.st.LastUID = uint32(hi)
	}
	// Every message of the chunk was emitted (or its stand-in), set aside
	// (expunged), expunged meanwhile or held (see settleRefused): none
	// but those held is refused alone any more.
	for _, u := range uids {
		if !s.refusedAlone[u].held {
			delete(s.refusedAlone, u)
		}
	}
	s.cleared(uids)
	s.progressedLocked()
	s.mu.Unlock()
	if deferred != nil {
		return false, refusedGroup{refs: deferred.refs, what: deferred.what}
	}
	return returned, nil
}

// emitGroup fetches group and emits its mail, and reports whether the
// server returned the body of one of its messages.
func (s *Source) emitGroup(ctx context.Context, c *imapclient.Client, emit source.Emitter, group []meta) (bool, error) {
	bodies, oversize, refs, err := s.fetchGroup(ctx, c, group)
	if rg := (refusedGroup{}); errors.As(err, &rg) && len(bodies) > 0 {
		// Mails of 0 bytes returned beside the group's refusals (see
		// fetchGroup): emitted, the refusals settled by the caller.
		var out []meta
		for _, m := range group {
			if _, ok := bodies[m.uid]; ok {
				out = append(out, m)
			}
		}
		if err := s.emitMessages(ctx, emit, out, bodies, nil); err != nil {
			return false, err
		}
		return false, rg
	}
	if err != nil {
		return false, err
	}
	given := map[imap.UID]bool{}
	for _, r := range refs {
		given[r.m.uid] = true
	}
	var out []meta
	for _, m := range group {
		if size, ok := oversize[m.uid]; ok { // RFC822.SIZE said less
			m.size = size
			out = append(out, m)
		} else if _, ok := bodies[m.uid]; ok || given[m.uid] { // else expunged meanwhile, or set aside
			out = append(out, m)
		}
	}
	return hasContent(bodies, oversize), s.emitMessages(ctx, emit, out, bodies, refs)
}

// emitMessages emits one task per message of ms: its body from bodies, or,
// for a message the server refused to return (in refs), its stand-in
// (refusedTask), or, for one without either (above MaxMessageSize, not
// read), its stand-in (oversizedTask).
func (s *Source) emitMessages(ctx context.Context, emit source.Emitter, ms []meta, bodies map[imap.UID][]byte, refs []refusal) error {
	if len(ms) == 0 {
		return nil
	}
	// Which message is a copy of which is decided and recorded under one
	// lock with the in-flight set, and the tasks are in flight before
	// Emit (a worker may complete one before Emit returns): a completion
	// either sees a copy (and settles it) or has already ended (and the
	// copy is emitted as a message of its own).
	s.mu.Lock()
	validity := s.uidValidity
	refused := make(map[imap.UID]refusal, len(refs))
	for _, r := range refs {
		refused[r.m.uid] = r
	}
	tasks := make([]*task.Task, 0, len(ms))
	var standIns []imap.UID
	big, denied := 0, 0
	for _, m := range ms {
		var t *task.Task
		raw, fetched := bodies[m.uid]
		r, isRefused := refused[m.uid]
		switch {
		case fetched:
			t = s.newTask(m, validity, raw)
		case isRefused:
			t = s.refusedTask(r, validity)
		default:
			t = s.oversizedTask(m, validity)
		}
		if s.addDupe(t.Key, m.uid) { // a copy of one in flight, maybe emitted just above
			continue
		}
		if _, done := s.finished[m.uid]; done {
			// Completed since this scan's search (a rescan from below
			// the cursor finds mail emitted before): its task was told,
			// emitting it again would tell it twice.
			s.log.Debug("a message completed during the scan: not emitted again", zap.Uint32("uid", uint32(m.uid)))
			continue
		}
		s.inflight[t.Key] = emitted{uid: m.uid, validity: validity, at: time.Now()}
		tasks = append(tasks, t)
		if fetched || s.counted[m.uid] { // a stand-in emitted again counts its mail once
			continue
		}
		standIns = append(standIns, m.uid)
		if isRefused {
			denied++
		} else {
			big++
		}
	}
	s.st.InFlight = len(s.inflight)
	if len(tasks) == 0 {
		s.mu.Unlock()
		return nil
	}
	s.emitting = true
	s.mu.Unlock()
	err := s.emitTasks(ctx, emit, tasks)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emitting = false
	if err != nil {
		// The cursor stays below the group: all of it is scanned again,
		// but for a message whose task was completed during Emit (a
		// duplicate of a finished one, told at once by the emitter): it
		// stays in flight until its completion is applied, which settles
		// its copies.
		for _, t := range tasks {
			if s.inflight[t.Key].completing {
				continue
			}
			delete(s.inflight, t.Key)
			delete(s.dupes, t.Key)
		}
		s.st.InFlight = len(s.inflight)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fatal{fmt.Errorf("%w: %d tasks: %w", ErrEmit, len(tasks), err)}
	}
	now := time.Now() // InFlightTimeout counts from the end of Emit
	for _, t := range tasks {
		if e, ok := s.inflight[t.Key]; ok {
			e.at = now
			s.inflight[t.Key] = e
		}
	}
	s.st.Emitted += uint64(len(tasks))
	s.progressedLocked()
	for _, u := range standIns {
		s.counted[u] = true
	}
	s.st.Oversized += uint64(big)
	s.st.Refused += uint64(denied)
	s.log.Debug("emitted", zap.Int("tasks", len(tasks)))
	return nil
}
