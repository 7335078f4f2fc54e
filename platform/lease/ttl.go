package lease

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The TTL a KV lease counts on is its host's (KVConfig.TTL) or, when the
// bucket's is shorter, the bucket's: the bucket's TTL (its stream's
// MaxAge) is what makes a key expire, and it can be lowered under a
// running host (ApplyKV on a host that owns the server other hosts use,
// or an operator's nats kv edit). A host asks the bucket's status after
// it created a lease's key and after each renewal, and counts on what it
// saw: it renews every quarter of it and believes its hold until three
// quarters of it after its last renewal was sent; a renewal after which
// the status cannot be read does not extend its hold (the TTL may have
// been lowered unseen), as a failed renewal does not, and a key created
// after which it cannot be read is let go (deleted). A lowering after the
// host looked is ApplyKV's to cover (see lowered.go): no host takes a
// lease from the bucket until the old TTL has passed since the change.
// A bucket TTL other than the host's is a configuration problem, shown as
// the lease's last error until the two agree.
//
// The leases of one KV share their reads (statusSince): a holder counts
// on a read that started no earlier than its need arose (its create or
// its renewal sent: the time its hold is counted from), under way or
// done, and starts one of its own when the latest started before. A
// lowering after such a read is the mark's to cover, as after a read of
// its own; a read that started before the need could have been answered
// before a lowering that the renewal then misses. Renewals are due on a
// grid of the KV's (a sixteenth of the TTL, earlier never later), so
// that the renewals of many leases come together and share few reads. An
// attempt that finds the lease held counts on nothing: for the TTL its
// Status shows, any read that started within the TTL does.

// countOn is the TTL a host whose own is own counts on when the bucket's
// is bucket: the shorter (a bucket without a TTL, 0, keeps keys for ever).
func countOn(own, bucket time.Duration) time.Duration {
	if bucket > 0 && bucket < own {
		return bucket
	}
	return own
}

// ttl is the TTL this host counts on, with the bucket's TTL as last seen.
func (k *KV) ttl() time.Duration {
	return countOn(k.cfg.TTL, time.Duration(k.seenTTL.Load()))
}

// status asks the bucket's status and records its TTL as last seen,
// unless a read that started later recorded one already: reads answered
// out of order (one from before a lowering answered after one from
// after it) leave the latest read's TTL, not the last answered.
func (k *KV) status(ctx context.Context) (jetstream.KeyValueStatus, error) {
	started := time.Now()
	st, err := k.kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("bucket %q: status: %w", k.cfg.Bucket, err)
	}
	k.reads.mu.Lock()
	if !started.Before(k.reads.seenFrom) {
		k.reads.seenFrom = started
		k.seenTTL.Store(int64(st.TTL()))
	}
	k.reads.mu.Unlock()
	return st, nil
}

// statusRead is one read of the bucket's status, shared by the leases
// of a KV (statusSince).
type statusRead struct {
	started time.Time     // before its request was sent
	done    chan struct{} // closed once st and err are set
	st      jetstream.KeyValueStatus
	err     error
	// cut: the read ended with its starter's context, not with an
	// answer of the server's.
	cut bool
}

// statusReads holds a KV's latest status read, and when the read whose
// TTL is the last seen started.
type statusReads struct {
	mu       sync.Mutex
	latest   *statusRead
	seenFrom time.Time
}

// statusSince returns the bucket's status from a read that started no
// earlier than since (the time the caller's need arose): the KV's latest
// read, under way or done, when it started at or after since, else a new
// one that the caller makes (and that later callers may share). A shared
// read that its starter's context cut short is made again.
func (k *KV) statusSince(ctx context.Context, since time.Time) (jetstream.KeyValueStatus, error) {
	for {
		k.reads.mu.Lock()
		r := k.reads.latest
		own := r == nil || r.started.Before(since)
		if own {
			r = &statusRead{started: time.Now(), done: make(chan struct{})}
			k.reads.latest = r
		}
		k.reads.mu.Unlock()
		if own {
			r.st, r.err = k.status(ctx)
			if r.err != nil && ctx.Err() != nil {
				r.cut = true
				k.reads.mu.Lock()
				if k.reads.latest == r {
					k.reads.latest = nil
				}
				k.reads.mu.Unlock()
			}
			close(r.done)
			return r.st, r.err
		}
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("bucket %q: status: %w", k.cfg.Bucket, ctx.Err())
		}
		if !r.cut {
			return r.st, r.err
		}
	}
}

// renewalGrid is the step of the grid a renewal counting on ttl is due
// on (see renewalDue).
func renewalGrid(ttl time.Duration) time.Duration { return ttl / 16 }

// renewalDue is when a renewal counting on ttl is due after one sent at
// sent: a quarter of ttl after it, brought forward onto the KV's grid, so
// that the renewals of its leases come together and share their status
// reads (statusSince). Never later than a quarter of ttl after sent, more
// than three sixteenths after it.
func (k *KV) renewalDue(sent time.Time, ttl time.Duration) time.Time {
	due := sent.Add(ttl / 4)
	g := renewalGrid(ttl)
	if g <= 0 || k.epoch.IsZero() {
		return due
	}
	off := due.Sub(k.epoch) % g
	if off < 0 {
		off += g
	}
	return due.Add(-off)
}

// ttlProblem says how the bucket's TTL, as last seen, differs from this
// host's, and what the host counts on meanwhile; "" when they agree.
func (k *KV) ttlProblem() string {
	have := time.Duration(k.seenTTL.Load())
	if have == k.cfg.TTL {
		return ""
	}
	return fmt.Sprintf("%v: bucket %q has ttl %v, configured %v: counting on %v until the host is configured like the bucket",
		ErrConfig, k.cfg.Bucket, have, k.cfg.TTL, k.ttl())
}
