package lease

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/internal/jsapi"
)

// ApplyKV brings the leases' bucket cfg names, when it exists, to cfg's
// TTL and replicas, for a host that owns its NATS server (the only host
// that applies its configuration to it; hosts that merely use a server
// compare theirs: CheckKV). A bucket that does not exist passes: it is
// created at first use. A setting the server refuses to change is a
// *BucketDiffers whose Refused is the server's answer.
//
// Other hosts may use the owner's server (its embedded server listens
// for them) and hold leases counting on the old TTL, and a lowered TTL
// lets their keys expire sooner than they believe their holds. So a
// lower TTL is marked in the bucket with the time of the change, and no
// host takes a lease from the bucket until the old TTL has passed since
// (see lowered.go): a host that starts with a lowered TTL holds its
// leases the old TTL after it applied it (Status.HeldFrom says when). A
// raised or unchanged TTL adds no wait.
func ApplyKV(ctx context.Context, js jetstream.JetStream, cfg KVConfig) error {
	cfg = cfg.withDefaults()
	want := cfg.bucketConfig()
	kv, err := bindExisting(ctx, js, want.Bucket)
	if kv == nil || err != nil {
		return err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("lease: bucket %q: status: %w", want.Bucket, err)
	}
	bst, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bst.StreamInfo() == nil {
		return fmt.Errorf("lease: bucket %q: status without its stream's info", want.Bucket)
	}
	var d *BucketDiffers
	_ = errors.As(checkStatus(st, want.Bucket, want.TTL, want.Replicas), &d)
	return applyKVConfig(ctx, js, kv, bst, want, d)
}

// ApplyMarks brings the marks' bucket (DefaultMarksBucket when empty),
// when it exists, to replicas (1 when 0), as ApplyKV does the leases'.
func ApplyMarks(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) error {
	want := marksConfig(bucket, replicas)
	kv, err := bindExisting(ctx, js, want.Bucket)
	if kv == nil || err != nil {
		return err
	}
	var d *BucketDiffers
	if err := checkBucket(ctx, kv, want.Bucket, want.TTL, want.Replicas); !errors.As(err, &d) {
		return err
	}
	return update(ctx, js, want, d)
}

// bindExisting binds to bucket: nil and no error when it does not exist.
func bindExisting(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	kv, err := jsapi.Retry(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, bucket) })
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lease: bucket %q: %w", bucket, err)
	}
	return kv, nil
}
