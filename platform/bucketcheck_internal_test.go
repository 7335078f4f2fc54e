package platform

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/natstest"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/source"
)

// natsURLFor is PLBA_TEST_NATS_URL, or a NATS server the test starts on
// a free loopback port.
func natsURLFor(t *testing.T) string {
	t.Helper()
	if url := os.Getenv("PLBA_TEST_NATS_URL"); url != "" {
		return url
	}
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(context.Background(), opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv.ClientURL()
}

// connectJS connects to url; the connection is closed when t ends.
func connectJS(t *testing.T, url string) njs.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := njs.New(nc)
	require.NoError(t, err)
	return js
}

// deletePrefix deletes the streams of prefix when t ends.
func deletePrefix(t *testing.T, js njs.JetStream, prefix string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for name := range js.StreamNames(ctx).Name() {
			if strings.HasPrefix(name, prefix+"_") {
				_ = js.DeleteStream(ctx, name)
			}
		}
	})
}

// requireSettingsDiffer checks that err is the ErrSettingsDiffer problem
// at key, saying each of says.
func requireSettingsDiffer(t *testing.T, err error, key string, says ...string) {
	t.Helper()
	require.ErrorIs(t, err, jetstream.ErrSettingsDiffer)
	var p config.Problem
	require.ErrorAs(t, err, &p, "a configuration problem (exit 2): %v", err)
	require.Equal(t, key, p.Key, "%v", err)
	for _, s := range says {
		require.Contains(t, p.Msg, s)
	}
}

// TestBackendStartChecksTheLeasesBucket: a host whose sources.lease.ttl
// differs from the leases' bucket's refuses to start, naming the key, as
// for the streams' settings. Before, the backend started and the
// difference surfaced at the first lease, as a run-time error in the
// lease's status: the exclusive sources never ran, on a host that
// started.
func TestBackendStartChecksTheLeasesBucket(t *testing.T) {
	t.Parallel()
	url := natsURLFor(t)
	js := connectJS(t, url)
	n := time.Now().UnixNano()
	prefix := fmt.Sprintf("BUCKETCHECK%d", n)
	lc := source.LeaseConfig{Bucket: fmt.Sprintf("plba_test_check_leases_%d", n), MarksBucket: fmt.Sprintf("plba_test_check_marks_%d", n)}.WithDefaults()
	deletePrefix(t, js, prefix)
	t.Cleanup(func() {
		_ = js.DeleteKeyValue(context.Background(), lc.Bucket)
		_ = js.DeleteKeyValue(context.Background(), lc.MarksBucket)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := lease.OpenKV(ctx, js, lease.KVConfig{Bucket: lc.Bucket, TTL: 3 * time.Second})
	require.NoError(t, err)
	_, err = lease.OpenMarks(ctx, js, lc.MarksBucket, 1)
	require.NoError(t, err)

	start := func(lc source.LeaseConfig) error {
		b, err := jetstream.New(jetstream.Params{Config: jetstream.Config{URL: url, StreamPrefix: prefix}})
		require.NoError(t, err)
		err = startJetStream(ctx, b, lc)
		if err == nil {
			require.NoError(t, b.Close(ctx))
		} else {
			require.ErrorIs(t, b.Enqueue(ctx), queue.ErrClosed, "a backend whose buckets differ is closed")
		}
		return err
	}
	err = start(lc) // TTL 6s
	requireSettingsDiffer(t, err, "sources.lease.ttl", "6s", "3s", lc.Bucket)
	lc.TTL = 3 * time.Second
	require.NoError(t, start(lc), "the same settings")
}

// TestClusterBackendStartChecksBucketReplicas (PLBA_TEST_CLUSTER=1): on a
// three-node cluster, a host with replicas: 3 refuses to start when the
// leases' or the marks' bucket has one replica, naming
// queue.jetstream.replicas, instead of binding to it at first use and
// failing there (or, for the marks, of a schedule catching up with no
// mark).
func TestClusterBackendStartChecksBucketReplicas(t *testing.T) {
	t.Parallel()
	if os.Getenv("PLBA_TEST_CLUSTER") == "" {
		t.Skip("set PLBA_TEST_CLUSTER=1 to run a three-node cluster")
	}
	srvs := natstest.StartCluster(t, 3)
	urls := make([]string, len(srvs))
	for i, s := range srvs {
		urls[i] = s.ClientURL()
	}
	url := strings.Join(urls, ",")
	js := connectJS(t, urls[0])
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	lc := source.LeaseConfig{}.WithDefaults()
	start := func() error {
		b, err := jetstream.New(jetstream.Params{Config: jetstream.Config{URL: url, Replicas: 3}})
		require.NoError(t, err)
		err = startJetStream(ctx, b, lc)
		if err == nil {
			require.NoError(t, b.Close(ctx))
		}
		return err
	}
	_, err := lease.OpenKV(ctx, js, lease.KVConfig{Bucket: lc.Bucket, TTL: lc.TTL, Replicas: 1})
	require.NoError(t, err)
	requireSettingsDiffer(t, start(), "queue.jetstream.replicas", "3", "1", `leases bucket "plba_leases"`)

	require.NoError(t, js.DeleteKeyValue(ctx, lc.Bucket))
	_, err = lease.OpenMarks(ctx, js, lc.MarksBucket, 1)
	require.NoError(t, err)
	requireSettingsDiffer(t, start(), "queue.jetstream.replicas", "3", "1", `schedule marks bucket "plba_schedule_marks"`)

	require.NoError(t, js.DeleteKeyValue(ctx, lc.MarksBucket))
	require.NoError(t, start(), "no bucket yet: created on first use")
}

// TestRefusedBucketChangeNamesTheKey: a bucket a host that owns its
// server could not bring to its settings stops the host naming the key
// and saying the server refused (exit 2).
func TestRefusedBucketChangeNamesTheKey(t *testing.T) {
	t.Parallel()
	refused := fmt.Errorf("replicas > 1 not supported in non-clustered mode")
	err := bucketProblem(&lease.BucketDiffers{Bucket: "plba_leases", Setting: lease.SettingReplicas, Want: 3, Have: 1, Refused: refused}, "leases")
	requireSettingsDiffer(t, err, "queue.jetstream.replicas", "3, but the leases bucket \"plba_leases\"", "has 1", "the server refused to change it", refused.Error())
	require.ErrorIs(t, err, lease.ErrConfig)
	err = bucketProblem(&lease.BucketDiffers{Bucket: "b", Setting: lease.SettingTTL, Want: 3 * time.Second, Have: 6 * time.Second, Refused: refused}, "leases")
	requireSettingsDiffer(t, err, "sources.lease.ttl", "3s", "6s", "refused")
}
