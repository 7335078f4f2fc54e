package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/internal/jsapi"
)

// Settings of a bucket that every host must agree on, as BucketDiffers
// names them.
const (
	SettingTTL      = "ttl"
	SettingReplicas = "replicas"
)

// BucketDiffers is the error of a bucket found on the server with another
// setting than this host's configuration: the leases' TTL or replicas,
// the marks' replicas. It wraps ErrConfig.
type BucketDiffers struct {
	// Bucket is the bucket's name.
	Bucket string
	// Setting is SettingTTL or SettingReplicas.
	Setting string
	// Want is this host's value, Have the bucket's.
	Want, Have any
	// Refused is the server's answer when a host that applies its
	// configuration (ApplyKV, ApplyMarks) could not change the bucket;
	// nil when the bucket was only compared.
	Refused error
}

func (e *BucketDiffers) Error() string {
	if e.Refused != nil {
		return fmt.Sprintf("%v: bucket %q has %s %v, configured %v, and the server refused to change it: %v",
			ErrConfig, e.Bucket, e.Setting, e.Have, e.Want, e.Refused)
	}
	return fmt.Sprintf("%v: bucket %q has %s %v, configured %v (change the bucket first: nats kv edit, or nats stream edit KV_%s%s)",
		ErrConfig, e.Bucket, e.Setting, e.Have, e.Want, e.Bucket, e.lowering())
}

// lowering is the caution for an operator about to lower the bucket's TTL
// by hand, which leaves no mark for the hosts counting on the old one
// (see ApplyKV); "" for another change.
func (e *BucketDiffers) lowering() string {
	have, ok1 := e.Have.(time.Duration)
	want, ok2 := e.Want.(time.Duration)
	if e.Setting != SettingTTL || !ok1 || !ok2 || want >= have {
		return ""
	}
	return "; lowering the ttl by hand: with every host stopped"
}

// Lowering reports whether the difference is a TTL this host's
// configuration would lower.
func (e *BucketDiffers) Lowering() bool { return e.lowering() != "" }

// Unwrap returns ErrConfig.
func (e *BucketDiffers) Unwrap() error { return ErrConfig }

// CheckKV compares the leases' bucket cfg names, when it exists, with
// cfg's TTL and replicas, as OpenKV does, without creating it or binding
// to it: a host checks it when it starts, so that a difference stops the
// host at once rather than failing its first lease. A bucket that does
// not exist passes. A difference is a *BucketDiffers.
func CheckKV(ctx context.Context, js jetstream.JetStream, cfg KVConfig) error {
	cfg = cfg.withDefaults()
	return checkExisting(ctx, js, cfg.Bucket, cfg.TTL, cfg.Replicas)
}

// CheckMarks compares the marks' bucket (DefaultMarksBucket when empty),
// when it exists, with replicas (1 when 0), as OpenMarks does, without
// creating it. A bucket that does not exist passes. A difference is a
// *BucketDiffers.
func CheckMarks(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) error {
	c := marksConfig(bucket, replicas)
	return checkExisting(ctx, js, c.Bucket, 0, c.Replicas)
}

// checkExisting looks bucket up and checks it (checkBucket) when it
// exists.
func checkExisting(ctx context.Context, js jetstream.JetStream, bucket string, ttl time.Duration, replicas int) error {
	kv, err := jsapi.Retry(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, bucket) })
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lease: bucket %q: %w", bucket, err)
	}
	return checkBucket(ctx, kv, bucket, ttl, replicas)
}

// checkBucket compares kv's TTL (unless ttl is 0) and replicas with
// this host's.
func checkBucket(ctx context.Context, kv jetstream.KeyValue, bucket string, ttl time.Duration, replicas int) error {
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("lease: bucket %q: status: %w", bucket, err)
	}
	return checkStatus(st, bucket, ttl, replicas)
}

// checkStatus compares the TTL (unless ttl is 0) and replicas of a
// bucket's status st with this host's: a *BucketDiffers, or nil.
func checkStatus(st jetstream.KeyValueStatus, bucket string, ttl time.Duration, replicas int) error {
	if ttl != 0 && st.TTL() != ttl {
		// Hosts that disagree on the TTL could both believe they hold a
		// lease.
		return &BucketDiffers{Bucket: bucket, Setting: SettingTTL, Want: ttl, Have: st.TTL()}
	}
	if kst, ok := st.(*jetstream.KeyValueBucketStatus); ok && kst.StreamInfo() != nil {
		if have := kst.StreamInfo().Config.Replicas; have != replicas {
			// Bound as it is, the bucket would not survive the loss of a
			// server the configuration says it survives (or would cost
			// copies it does not ask for), and nobody would know.
			return &BucketDiffers{Bucket: bucket, Setting: SettingReplicas, Want: replicas, Have: have}
		}
	}
	return nil
}
