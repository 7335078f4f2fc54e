package lease_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// TestApplyBringsTheBucketsToTheConfiguration: a host that owns its
// server applies its settings to the buckets it finds: the leases' bucket
// gets the configured TTL (the host's leases then open, where the old
// TTL failed them); a bucket that does not exist is left to the first
// use; what the server refuses to change (replicas: 3 on a server outside
// a cluster) is a *BucketDiffers saying so.
func TestApplyBringsTheBucketsToTheConfiguration(t *testing.T) {
	t.Parallel()
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(t.Context(), opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	bucket := fmt.Sprintf("plba_test_apply_%d", time.Now().UnixNano())
	_, err = lease.OpenKV(ctx, js, lease.KVConfig{Bucket: bucket, TTL: 6 * time.Second})
	require.NoError(t, err)
	_, err = lease.OpenMarks(ctx, js, bucket+"_marks", 1)
	require.NoError(t, err)

	cfg := lease.KVConfig{Bucket: bucket, TTL: 3 * time.Second}
	_, err = lease.OpenKV(ctx, js, cfg)
	require.ErrorAs(t, err, new(*lease.BucketDiffers), "the bucket has the old TTL")
	require.NoError(t, lease.ApplyKV(ctx, js, cfg))
	kv, err := js.KeyValue(ctx, bucket)
	require.NoError(t, err)
	st, err := kv.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, 3*time.Second, st.TTL())
	_, err = lease.OpenKV(ctx, js, cfg)
	require.NoError(t, err, "the leases open with the configured TTL")
	require.NoError(t, lease.CheckKV(ctx, js, cfg))
	require.NoError(t, lease.ApplyKV(ctx, js, cfg), "the same settings: nothing to change")
	require.NoError(t, lease.ApplyMarks(ctx, js, bucket+"_marks", 1))

	for name, apply := range map[string]func() error{
		"leases": func() error {
			return lease.ApplyKV(ctx, js, lease.KVConfig{Bucket: bucket, TTL: 3 * time.Second, Replicas: 3})
		},
		"marks": func() error { return lease.ApplyMarks(ctx, js, bucket+"_marks", 3) },
	} {
		var d *lease.BucketDiffers
		err := apply()
		require.ErrorAs(t, err, &d, name)
		require.ErrorIs(t, err, lease.ErrConfig, name)
		require.Equal(t, lease.SettingReplicas, d.Setting, name)
		require.Equal(t, 3, d.Want, name)
		require.Equal(t, 1, d.Have, name)
		require.Error(t, d.Refused, name)
		require.Contains(t, err.Error(), "the server refused to change it", name)
	}

	missing := bucket + "_missing"
	require.NoError(t, lease.ApplyKV(ctx, js, lease.KVConfig{Bucket: missing}))
	require.NoError(t, lease.ApplyMarks(ctx, js, missing, 1))
	_, err = js.KeyValue(ctx, missing)
	require.ErrorIs(t, err, jetstream.ErrBucketNotFound, "a missing bucket is created at first use, not here")
}
