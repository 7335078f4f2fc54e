package imap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/task"
)

// completer owns the connection completions run on: one connection,
// separate from the fetch loop's, used by one Complete at a time.
type completer struct {
	mu       sync.Mutex
	c        *imapclient.Client
	validity uint32
	folders  map[string]bool
	closed   bool
}

// Complete applies the configured action to the message behind t once
// its task is finally done: on task.Succeeded it flags it \Seen and/or
// moves it to OnSuccess.MoveTo; on task.DeadLettered it moves it to
// OnFailure.MoveTo (folders are created when missing). Other outcomes are
// ignored. The message is found by the UID in t's headers while the
// mailbox UIDVALIDITY still matches, else by a Message-ID search; a
// message that is no longer there was handled already, so Complete is
// idempotent. Further copies of the message (same task key) that the
// source saw but did not emit are settled the same way. It runs on its own connection, serialized, and is safe to
// call concurrently with Run, before Run and after Run returned.
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
	if seen || moveTo != "" {
		if err := s.apply(ctx, t, seen, moveTo); err != nil {
			return err
		}
	}
	s.mu.Lock()
	delete(s.inflight, t.Key)
	delete(s.dupes, t.Key)
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

// apply runs the action, retrying once on a fresh connection when a
// reused one turns out to be dead.
func (s *Source) apply(ctx context.Context, t *task.Task, seen bool, moveTo string) error {
	s.comp.mu.Lock()
	defer s.comp.mu.Unlock()
	if s.comp.closed {
		return ErrClosed
	}
	reused := s.comp.c != nil
	err := s.applyLocked(ctx, t, seen, moveTo)
	if err != nil && reused && ctx.Err() == nil && !isServerNo(err) {
		s.comp.reset()
		err = s.applyLocked(ctx, t, seen, moveTo)
	}
	if err != nil {
		if !isServerNo(err) {
			s.comp.reset()
		}
		return fmt.Errorf("imap: complete %q: %w", t.Key, err)
	}
	return nil
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

// close closes the connection and refuses further completions.
func (cp *completer) close() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.reset()
	cp.closed = true
}

func (s *Source) applyLocked(ctx context.Context, t *task.Task, seen bool, moveTo string) error {
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

	uids, err := s.locate(c, cp.validity, t)
	if err != nil {
		return err
	}
	for _, u := range s.dupesOf(t.Key, cp.validity) {
		if !slices.Contains(uids, u) {
			uids = append(uids, u)
		}
	}
	if len(uids) == 0 {
		s.log.Debug("completion: message already gone", zap.String("key", t.Key))
		return nil
	}
	set := imap.UIDSetNum(uids...)
	if seen {
		err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
		if err != nil {
			return fmt.Errorf("flag \\Seen uid %v: %w", set, err)
		}
	}
	if moveTo != "" {
		if err := ensureFolder(c, moveTo, cp.folders); err != nil {
			return err
		}
		if _, err := c.Move(set, moveTo).Wait(); err != nil {
			return fmt.Errorf("move uid %v to %q: %w", set, moveTo, err)
		}
	}
	return nil
}

// locate returns the UIDs of the message behind t in the selected mailbox:
// by UID while UIDVALIDITY matches, else by Message-ID.
func (s *Source) locate(c *imapclient.Client, validity uint32, t *task.Task) ([]imap.UID, error) {
	uid, errU := strconv.ParseUint(t.Header(HeaderUID), 10, 32)
	v, errV := strconv.ParseUint(t.Header(HeaderUIDValidity), 10, 32)
	crit := &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagDeleted}}
	switch msgID := t.Header(HeaderMessageID); {
	case errU == nil && errV == nil && uid != 0 && uint32(v) == validity:
		crit.UID = []imap.UIDSet{imap.UIDSetNum(imap.UID(uid))}
	case msgID != "":
		crit.Header = []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: msgID}}
	default:
		s.log.Warn("completion: UIDVALIDITY changed and the message has no Message-ID: cannot find it",
			zap.String("key", t.Key), zap.String("uid", t.Header(HeaderUID)))
		return nil, nil
	}
	data, err := c.UIDSearch(crit, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("uid search: %w", err)
	}
	var out []imap.UID
	for _, u := range data.AllUIDs() {
		if len(crit.UID) == 0 || u == imap.UID(uid) {
			out = append(out, u)
		}
	}
	return out, nil
}

// Close closes the completion connection; later Complete calls return
// ErrClosed. Call it after the worker pools have drained (the fx module
// does, on stop). It does not stop Run: cancel Run's context for that.
func (s *Source) Close() error {
	s.comp.close()
	return nil
}
