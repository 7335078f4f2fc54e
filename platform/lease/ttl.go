package lease

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The TTL a KV lease counts on is its host's (KVConfig.TTL) or, when the
// bucket's is shorter, the bucket's: the bucket's TTL (its stream's
// MaxAge) is what makes a key expire, and it can be lowered under a
// running host (ApplyKV on a host that owns the server other hosts use,
// or an operator's nats kv edit). A host asks the bucket's status before
// each attempt to take a lease and after each renewal, and counts on what
// it saw: it renews every quarter of it and believes its hold until three
// quarters of it after its last renewal was sent; a renewal after which
// the status cannot be read does not extend its hold (the TTL may have
// been lowered unseen), as a failed renewal does not. A lowering after the
// host looked is ApplyKV's to cover (see lowered.go): no host takes a
// lease from the bucket until the old TTL has passed since the change.
// A bucket TTL other than the host's is a configuration problem, shown as
// the lease's last error until the two agree.

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

// status asks the bucket's status and records its TTL as last seen.
func (k *KV) status(ctx context.Context) (jetstream.KeyValueStatus, error) {
	st, err := k.kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("bucket %q: status: %w", k.cfg.Bucket, err)
	}
	k.seenTTL.Store(int64(st.TTL()))
	return st, nil
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
