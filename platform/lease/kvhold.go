package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// kvHold renews a held KV lease until Release or loss.
type kvHold struct {
	l    *kvLease
	val  []byte
	lost chan struct{}
	stop chan struct{} // closed by Release: no further renewal
	// cut ends a renewal waiting for its reply: Release cuts it when its
	// own context ends first.
	cut     context.Context
	cutStop context.CancelFunc
	done    chan struct{}

	mu       sync.Mutex
	rev      uint64
	isLost   bool
	released bool
}

// startHold starts renewing the lease created at revision rev by a
// request sent at sent, counting on ttl (ttl.go).
func startHold(l *kvLease, val []byte, rev uint64, sent time.Time, ttl time.Duration) *kvHold {
	h := &kvHold{l: l, val: val, rev: rev, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	h.cut, h.cutStop = context.WithCancel(context.Background())
	go h.renew(sent, ttl)
	return h
}

func (h *kvHold) Lost() <-chan struct{} { return h.lost }

// renew updates the key every quarter of the TTL it counts on (brought
// forward onto the KV's grid: renewalDue): ttl, then the shorter of the
// host's and the bucket's as seen by a read that started after each
// renewal was sent (ttl.go). The lease is valid until that TTL after the
// last successful renewal was sent; the hold is lost a quarter of it
// before that (three renewals failed), or at once when the key is no
// longer at the held revision. A renewal after which the bucket's status
// cannot be read counts as failed (the key is renewed, the hold not
// extended): the bucket's TTL may have been lowered unseen. Its times are
// the local monotonic clock's.
func (h *kvHold) renew(sent time.Time, ttl time.Duration) {
	defer close(h.done)
	lostAt := sent.Add(ttl - ttl/4)
	next := h.l.k.renewalDue(sent, ttl)
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	var failed error // of the last renewal that did not extend the hold
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		if !now.Before(lostAt) {
			err := fmt.Errorf("lease %q: not renewed within %v", h.l.name, ttl-ttl/4)
			if failed != nil {
				err = fmt.Errorf("%w: %w", err, failed)
			}
			h.lose(err)
			return
		}
		ctx, cancel := context.WithDeadline(h.cut, lostAt)
		h.mu.Lock()
		rev := h.rev
		h.mu.Unlock()
		newRev, err := h.l.k.kv.Update(ctx, h.l.key, h.val, rev)
		var (
			serr error
			st   jetstream.KeyValueStatus
		)
		if err == nil {
			// The bucket's TTL now: a lowering after this is ApplyKV's
			// to cover (lowered.go). The hold counts on a read that
			// started after this renewal was sent (its own, or one of
			// another lease's: statusSince), not on the last seen by any
			// of the KV's leases, which a slower read from before a
			// lowering may have set meanwhile.
			st, serr = h.l.k.statusSince(ctx, now)
		}
		cancel()
		if err == nil {
			h.mu.Lock()
			h.rev = newRev
			h.mu.Unlock()
		}
		switch {
		case err == nil && serr != nil:
			// Renewed, but under a TTL unknown: the bucket's may have
			// been lowered since it was last seen, and the mark of the
			// change covers only the old TTL from the change (lowered.go).
			// The hold is not extended: tried again soon, like a failed
			// renewal, and lost when no renewal is followed by a look at
			// the bucket in time.
			failed = fmt.Errorf("renewed, but not extended: %w", serr)
			h.l.mu.Lock()
			h.l.st.Revision, h.l.st.LastError = newRev, fmt.Sprintf("lease %q: %v", h.l.name, failed)
			h.l.mu.Unlock()
			next = time.Now().Add(ttl / 8)
			if next.After(lostAt) {
				next = lostAt
			}
		case err == nil:
			ttl, failed = countOn(h.l.k.cfg.TTL, st.TTL()), nil
			h.l.mu.Lock()
			h.l.st.Revision, h.l.st.LastError = newRev, h.l.k.ttlProblem()
			h.l.mu.Unlock()
			lostAt = now.Add(ttl - ttl/4)
			next = h.l.k.renewalDue(now, ttl)
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists):
			// Not at our revision: expired and maybe taken. (Also when
			// a renewal was applied but its reply lost: the hold ends,
			// safely, and the key expires after the TTL.)
			h.lose(fmt.Errorf("lease %q: lost: %w", h.l.name, err))
			return
		case h.cut.Err() != nil:
			return // cut short by Release: it may still have been applied
		default:
			failed = fmt.Errorf("renew: %w", err)
			h.l.setErr(fmt.Errorf("lease %q: %w", h.l.name, failed))
			next = time.Now().Add(ttl / 8)
			if next.After(lostAt) {
				next = lostAt
			}
		}
		t.Reset(time.Until(next))
	}
}

func (h *kvHold) lose(err error) {
	h.mu.Lock()
	h.isLost = true
	h.mu.Unlock()
	h.l.mu.Lock()
	h.l.st.Held, h.l.st.Holder, h.l.st.Since = false, "", time.Time{}
	h.l.st.LastError = err.Error()
	h.l.mu.Unlock()
	close(h.lost)
}

// Release stops renewing and, unless the hold was lost, deletes the key
// on the held revision. A renewal waiting for its reply is waited for
// while ctx lasts, and cut short when it ends (a renewal cut off from
// NATS waits until the hold would be lost: three quarters of the TTL).
// The key is left to expire when the delete fails, or finds another
// revision (a renewal cut short may still have been applied).
func (h *kvHold) Release(ctx context.Context) error {
	h.mu.Lock()
	if h.released {
		h.mu.Unlock()
		return nil
	}
	h.released = true
	h.mu.Unlock()
	close(h.stop)
	select {
	case <-h.done:
	case <-ctx.Done():
		h.cutStop()
		<-h.done
	}
	h.cutStop()
	h.mu.Lock()
	lost, rev := h.isLost, h.rev
	h.mu.Unlock()
	if lost {
		return nil
	}
	h.l.mu.Lock()
	h.l.st.Held, h.l.st.Holder, h.l.st.Since = false, "", time.Time{}
	h.l.mu.Unlock()
	if err := h.l.k.kv.Delete(ctx, h.l.key, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("lease %q: release: %w (it expires after the bucket's TTL, %v when last seen)", h.l.name, err,
			time.Duration(h.l.k.seenTTL.Load()))
	}
	return nil
}
