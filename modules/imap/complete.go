package imap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/task"
)

// Bounds of one completion batch.
const (
	// maxCompletionBatch is the most completions applied together.
	maxCompletionBatch = 256
	// completionTimeout bounds one batch (after the dial timeout).
	completionTimeout = 30 * time.Second
	// settleRounds is how many times one completion applies its action
	// while further copies of its message keep turning up; copies found
	// after the last round are scanned again.
	settleRounds = 3
)

// completer owns the connection completions run on: one connection,
// separate from the fetch loop's, used only by the completion loop. The
// loop takes every completion that is waiting and applies them together
// (one search, one STORE and one MOVE per action for the whole batch), so
// concurrent workers share round trips instead of queueing for them.
type completer struct {
	// Owned by the loop goroutine (and by close once it has ended).
	c        *imapclient.Client
	validity uint32
	folders  map[string]bool

	reqs chan *compReq
	stop chan struct{} // closed by close: the loop ends
	done chan struct{} // closed when the loop has ended

	mu      sync.Mutex
	started bool
	closed  bool
}

// compReq is one completion waiting for the loop.
type compReq struct {
	ctx    context.Context
	t      *task.Task
	seen   bool
	moveTo string
	done   chan error // buffered: the loop never blocks on it
	// settled is the copies of the message the batch included, set by
	// the loop before done.
	settled dupe
}

func (cp *completer) init() {
	cp.folders = map[string]bool{}
	cp.reqs = make(chan *compReq)
	cp.stop = make(chan struct{})
	cp.done = make(chan struct{})
}

// Complete applies the configured action to the message behind t once
// its task is finally done: on task.Succeeded it flags it \Seen and/or
// moves it to OnSuccess.MoveTo; on task.DeadLettered it moves it to
// OnFailure.MoveTo (folders are created when missing). Other outcomes are
// ignored. The message is found by the UID in t's headers while the
// mailbox UIDVALIDITY still matches, else by its Message-ID (an exact
// match, and the same content when t carries its payload); a message
// that is no longer there was handled already, so Complete is
// idempotent. Further copies of the message (same task key: same bytes)
// that the source saw but did not emit are settled the same way,
// including copies found while the completion runs. Completions run
// on their own connection, batched with the others waiting at the same
// time; Complete is safe to call concurrently with Run, before Run and
// after Run returned.
func (s *Source) Complete(ctx context.Context, t *task.Task, o task.Outcome, reason string) error {
	if !o.Final() || t == nil {
		return nil
	}
	var seen bool
	var moveTo string
	if o == task.Succeeded {
		seen, moveTo = *s.cfg.OnSuccess.Seen, *s.cfg.OnSuccess.MoveTo
	} else {
		moveTo = *s.cfg.OnFailure.MoveTo
	}
	act := seen || moveTo != ""
	for round := 1; ; round++ {
		var settled dupe
		if act {
			var err error
			if settled, err = s.apply(ctx, t, seen, moveTo); err != nil {
				return err
			}
		}
		s.mu.Lock()
		if left := s.forgetSettled(t.Key, settled); !act || len(left) == 0 || round == settleRounds {
			break // with s.mu held
		}
		s.mu.Unlock() // copies recorded meanwhile: settle them too
	}
	// In the same critical section as the last check: from here on, a
	// copy the scan finds is a message of its own (addDupe), and copies
	// still left are scanned again.
	delete(s.inflight, t.Key)
	s.dropDupes(t.Key, act)
	s.st.InFlight = len(s.inflight)
	if o == task.Succeeded {
		s.st.CompletedOK++
	} else {
		s.st.CompletedFailed++
	}
	s.mu.Unlock()
	if o == task.DeadLettered {
		s.log.Warn("message dead-lettered", zap.String("uid", t.Header(HeaderUID)),
			zap.String("message_id", t.Header(HeaderMessageID)), zap.String("moved_to", moveTo), zap.String("reason", reason))
	}
	return nil
}

// apply hands the action to the completion loop (starting it on first
// use) and waits for its result or ctx. It returns the copies of the
// message it settled with it.
func (s *Source) apply(ctx context.Context, t *task.Task, seen bool, moveTo string) (dupe, error) {
	cp := &s.comp
	cp.mu.Lock()
	if cp.closed {
		cp.mu.Unlock()
		return dupe{}, ErrClosed
	}
	if !cp.started {
		cp.started = true
		go s.completionLoop() // owned by the source: Close stops it
	}
	cp.mu.Unlock()
	r := &compReq{ctx: ctx, t: t, seen: seen, moveTo: moveTo, done: make(chan error, 1)}
	select {
	case cp.reqs <- r:
	case <-cp.stop:
		return dupe{}, ErrClosed
	case <-ctx.Done():
		return dupe{}, fmt.Errorf("imap: complete %q: %w", t.Key, ctx.Err())
	}
	select {
	case err := <-r.done:
		if err != nil {
			return dupe{}, fmt.Errorf("imap: complete %q: %w", t.Key, err)
		}
		return r.settled, nil
	case <-ctx.Done():
		// The loop may still apply it: harmless, completion is idempotent.
		return dupe{}, fmt.Errorf("imap: complete %q: %w", t.Key, ctx.Err())
	}
}

// completionLoop applies completions in batches until Close.
func (s *Source) completionLoop() {
	cp := &s.comp
	defer close(cp.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // owned by the loop: ends with it
		select {
		case <-cp.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		var batch []*compReq
		select {
		case <-cp.stop:
			return
		case r := <-cp.reqs:
			batch = append(batch, r)
		}
	more:
		for len(batch) < maxCompletionBatch {
			select {
			case r := <-cp.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		live := batch[:0]
		for _, r := range batch {
			if err := r.ctx.Err(); err != nil {
				r.done <- err
				continue
			}
			live = append(live, r)
		}
		if len(live) > 0 {
			bctx, bcancel := context.WithTimeout(ctx, s.cfg.DialTimeout+completionTimeout)
			s.processBatch(bctx, live)
			bcancel()
		}
	}
}

// processBatch applies batch and answers every request in it. A dead
// connection is replaced once; a server's NO for a batch of several is
// narrowed down by applying each on its own.
func (s *Source) processBatch(ctx context.Context, batch []*compReq) {
	cp := &s.comp
	err := s.applyBatch(ctx, batch)
	if err != nil && ctx.Err() == nil && !isServerNo(err) {
		cp.reset()
		err = s.applyBatch(ctx, batch)
	}
	if err != nil && !isServerNo(err) {
		cp.reset()
	}
	if err != nil && isServerNo(err) && len(batch) > 1 {
		for _, r := range batch {
			s.processBatch(ctx, []*compReq{r})
		}
		return
	}
	s.mu.Lock()
	s.st.CompletionBatches++
	s.mu.Unlock()
	for _, r := range batch {
		r.done <- err
	}
	if len(batch) > 1 {
		s.log.Debug("completions applied", zap.Int("batch", len(batch)), zap.Error(err))
	}
}

func isServerNo(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie)
}

func (cp *completer) reset() {
	if cp.c != nil {
		_ = cp.c.Close()
	}
	cp.c = nil
	cp.validity = 0
	cp.folders = map[string]bool{}
}

// close stops the loop (waiting for its batch), closes the connection and
// refuses further completions.
func (cp *completer) close() {
	cp.mu.Lock()
	if cp.closed {
		cp.mu.Unlock()
		return
	}
	cp.closed = true
	started := cp.started
	cp.mu.Unlock()
	close(cp.stop)
	if started {
		<-cp.done
	}
	cp.reset()
}

// action is what a completion does to its messages.
type action struct {
	seen   bool
	moveTo string
}

// applyBatch connects when needed, finds the messages of every request
// (by UID while UIDVALIDITY matches, else by Message-ID), keeps those that
// still exist (one UID SEARCH for all) and applies each action to its
// messages at once.
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
		c, err := dial(ctx, s.cfg, nil)
		if err != nil {
			var f fatal
			if errors.As(err, &f) {
				err = f.err
			}
			return err
		}
		sel, err := c.Select(s.cfg.Mailbox, nil).Wait()
		if err != nil {
			c.Close()
			return fmt.Errorf("select %q: %w", s.cfg.Mailbox, err)
		}
		cp.c, cp.validity = c, sel.UIDValidity
	}
	c := cp.c
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()

	var (
		order  []action
		groups = map[action][]imap.UID{}
		all    []imap.UID
	)
	for _, r := range batch {
		a := action{seen: r.seen, moveTo: r.moveTo}
		if _, ok := groups[a]; !ok {
			order = append(order, a)
			groups[a] = nil
		}
		uids, err := s.locate(c, cp.validity, r.t)
		if err != nil {
			return err
		}
		r.settled = dupe{validity: cp.validity, uids: s.dupesOf(r.t.Key, cp.validity)}
		uids = append(uids, r.settled.uids...)
		groups[a] = append(groups[a], uids...)
		all = append(all, uids...)
	}
	if len(all) == 0 {
		return nil
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{
		UID:     []imap.UIDSet{imap.UIDSetNum(all...)},
		NotFlag: []imap.Flag{imap.FlagDeleted},
	}, nil).Wait()
	if err != nil {
		return fmt.Errorf("uid search: %w", err)
	}
	exists := map[imap.UID]bool{}
	for _, u := range data.AllUIDs() {
		exists[u] = true
	}
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
			if _, err := c.Move(set, a.moveTo).Wait(); err != nil {
				return fmt.Errorf("move uid %v to %q: %w", set, a.moveTo, err)
			}
		}
	}
	return nil
}

// locate returns the candidate UIDs of the message behind t in the
// selected mailbox: its UID while UIDVALIDITY matches (the caller checks
// that it still exists), else the messages with exactly its Message-ID
// and, when t carries its payload, the same bytes. (A HEADER search
// matches substrings: <1@example.com> finds <11@example.com> too; and
// two different messages may share a Message-ID.)
func (s *Source) locate(c *imapclient.Client, validity uint32, t *task.Task) ([]imap.UID, error) {
	uid, errU := strconv.ParseUint(t.Header(HeaderUID), 10, 32)
	v, errV := strconv.ParseUint(t.Header(HeaderUIDValidity), 10, 32)
	if errU == nil && errV == nil && uid != 0 && uint32(v) == validity {
		return []imap.UID{imap.UID(uid)}, nil
	}
	msgID := t.Header(HeaderMessageID)
	if msgID == "" {
		s.log.Warn("completion: UIDVALIDITY changed and the message has no Message-ID: cannot find it",
			zap.String("key", t.Key), zap.String("uid", t.Header(HeaderUID)))
		return nil, nil
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{
		Header:  []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: msgID}},
		NotFlag: []imap.Flag{imap.FlagDeleted},
	}, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("uid search: %w", err)
	}
	cands := data.AllUIDs()
	if len(cands) == 0 {
		return nil, nil
	}
	bufs, err := c.Fetch(imap.UIDSetNum(cands...), &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetch envelopes: %w", err)
	}
	var exact []imap.UID
	for _, b := range bufs {
		if b.UID != 0 && b.Envelope != nil && b.Envelope.MessageID == msgID {
			exact = append(exact, b.UID)
		}
	}
	if len(exact) == 0 || len(t.Payload) == 0 {
		return exact, nil
	}
	// Bodies larger than the payload cannot be it: they are not read.
	bodies, _, err := fetchBodies(c, imap.UIDSetNum(exact...), &imap.FetchItemBodySection{Peek: true}, int64(len(t.Payload)), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch bodies: %w", err)
	}
	var same []imap.UID
	for _, u := range exact {
		if b, ok := bodies[u]; ok && bytes.Equal(b, t.Payload) {
			same = append(same, u)
		}
	}
	return same, nil
}

// Close closes the completion connection; later Complete calls return
// ErrClosed. Call it after the worker pools have drained (the fx module
// does, on stop). It does not stop Run: cancel Run's context for that.
func (s *Source) Close() error {
	s.comp.close()
	return nil
}
