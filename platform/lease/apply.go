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
// on it, which applies its configuration where the hosts sharing a
// server compare it: CheckKV). A bucket that does not exist passes: it is
// created at first use. A setting the server refuses to change is a
// *BucketDiffers whose Refused is the server's answer. The host that
// applies a new TTL is the only one: no other holder is left counting on
// the old one.
func ApplyKV(ctx context.Context, js jetstream.JetStream, cfg KVConfig) error {
	cfg = cfg.withDefaults()
	return applyExisting(ctx, js, cfg.bucketConfig())
}

// ApplyMarks brings the marks' bucket (DefaultMarksBucket when empty),
// when it exists, to replicas (1 when 0), as ApplyKV does the leases'.
func ApplyMarks(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) error {
	return applyExisting(ctx, js, marksConfig(bucket, replicas))
}

// applyExisting updates the bucket want names, when it exists and
// differs from want (checkBucket), to want.
func applyExisting(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig) error {
	kv, err := jsapi.Retry(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, want.Bucket) })
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lease: bucket %q: %w", want.Bucket, err)
	}
	var d *BucketDiffers
	if err := checkBucket(ctx, kv, want.Bucket, want.TTL, want.Replicas); !errors.As(err, &d) {
		return err
	}
	if _, err := jsapi.Retry(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.UpdateKeyValue(ctx, want) }); err != nil {
		d.Refused = err
		return d
	}
	return nil
}
