package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A hold on a bucket the server lost (restarted without its store, or the
// bucket deleted) may still be believed by a holder cut off from the
// server, until three quarters of the TTL after its last renewal, which
// came before the loss. A bucket set up again after the loss (by a host
// that starts, or one that found the bucket gone) is younger than the
// TTL until then; a host that takes a lease from a bucket younger than
// the TTL holds it only once the bucket is the TTL old.

// youngFor returns how long from now no lease may be held from the
// bucket, from st, its status read after this host created a lease's key
// in it (the read the hold counts its TTL on: try): while the bucket is
// younger than the TTL (at most the TTL), and while its TTL was lowered
// less than the old TTL ago (at most the old TTL: lowered.go). The
// bucket's age is measured in the server's time: its creation against
// the time the server reports with the bucket's info (servers 2.10 on)
// or, from older servers, against the time the server stored the key's
// latest entry (one more request); so is the time since a lowering. When
// the age is unknown (st without the bucket's creation, or the key's
// entry unreadable), the bucket is taken to be new: the key was created
// in it before, so it is the TTL old a TTL from now; and a lowering st
// shows marked is taken to have just begun: the wait is the longer of
// the two. The error says why the age is unknown, or why a lowering's
// mark cannot be read (then the wait is at least this host's TTL).
func (k *KV) youngFor(ctx context.Context, key string, st jetstream.KeyValueStatus) (time.Duration, error) {
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo() == nil {
		return k.cfg.TTL, fmt.Errorf("bucket %q: status without its stream's info", k.cfg.Bucket)
	}
	info := bs.StreamInfo()
	lw, _, lerr := loweringIn(info.Config.Metadata)
	if lerr != nil {
		lw, lerr = lowering{}, fmt.Errorf("bucket %q: %w", k.cfg.Bucket, lerr)
	}
	unknown := max(k.cfg.TTL, lw.from) // the wait when the age is unknown
	if info.Created.IsZero() {
		return unknown, errors.Join(fmt.Errorf("bucket %q: status without the time of its creation", k.cfg.Bucket), lerr)
	}
	serverNow := info.TimeStamp
	if serverNow.IsZero() {
		rctx, cancel := context.WithTimeout(ctx, k.ttl()/3)
		e, err := k.kv.Get(rctx, key)
		cancel()
		if err != nil {
			return unknown, errors.Join(fmt.Errorf("bucket %q: server time (key %q): %w", k.cfg.Bucket, key, err), lerr)
		}
		serverNow = e.Created()
	}
	wait := youngLeft(info.Created, serverNow, k.cfg.TTL)
	if lerr != nil {
		return max(wait, unknown), lerr
	}
	return max(wait, lw.left(serverNow)), nil
}

// youngLeft returns how long a bucket created at created (server time)
// stays younger than ttl, from serverNow (server time, no later than now):
// between 0 and ttl.
func youngLeft(created, serverNow time.Time, ttl time.Duration) time.Duration {
	left := created.Add(ttl).Sub(serverNow)
	return max(0, min(left, ttl))
}

// holdWhenOld waits until h's bucket is the TTL old, and past a lowering of
// its TTL (wait from now: youngFor), with
// Status saying so: the hold is this host's, not yet usable. It returns an
// error when the hold is lost meanwhile, and ctx.Err() (the hold
// released) when ctx ends first.
func (l *kvLease) holdWhenOld(ctx context.Context, h *kvHold, rec record, wait time.Duration) error {
	from := time.Now().Add(wait)
	h.mu.Lock()
	if !h.isLost { // else lose's Status comes after this one (it sets isLost first)
		l.mu.Lock()
		l.st.Holder, l.st.Since, l.st.Held, l.st.Revision, l.st.HeldFrom = rec.Holder, rec.Since, false, h.rev, from
		l.mu.Unlock()
	}
	h.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.st.HeldFrom = time.Time{}
		l.mu.Unlock()
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-h.Lost():
		return fmt.Errorf("lease %q: lost before it could be held from its bucket %q (new, or its TTL lowered)", l.name, l.k.cfg.Bucket)
	case <-ctx.Done():
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.k.ttl()/3)
		defer cancel()
		_ = h.Release(rctx) // a failed release expires after the TTL
		return ctx.Err()
	}
}
