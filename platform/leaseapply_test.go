package platform_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/source"
)

// A host that owns its embedded server, started again with another
// sources.lease.ttl (its operator changed the configuration and
// restarted it), brings the leases' bucket to the new TTL when it starts,
// as it applies its configuration to its streams, and its exclusive
// source runs. Before, the bucket was checked at the first lease only,
// which failed on the old TTL: the host was never ready and the source
// never ran. Started again with a lower TTL, it runs the source only once
// the old TTL has passed since it applied the new one: a host on its
// server counting on the old TTL may hold the lease until then.
func TestOwnServerAppliesTheLeaseTTL(t *testing.T) {
	t.Parallel()
	store := filepath.Join(t.TempDir(), "nats")
	start := func(ttl string, seen *running) (*admin.Server, *jetstream.Backend, *fxtest.App) {
		var srv *admin.Server
		var b queue.Backend
		cfg := load(t, "queue.backend=jetstream", "queue.jetstream.embedded.store_dir="+store,
			"sources.lease.ttl="+ttl, "sources.lease.holder=host", "health.interval=100ms")
		app := fxtest.New(t, platform.Module(cfg, platform.Info{}),
			fx.Provide(source.AsSource(func() *watcher { return &watcher{host: "host", seen: seen} })),
			fx.Populate(&srv, &b))
		app.RequireStart()
		jb, ok := b.(*jetstream.Backend)
		require.True(t, ok)
		require.True(t, jb.OwnsServer())
		return srv, jb, app
	}
	bucketTTL := func(b *jetstream.Backend) time.Duration {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		kv, err := b.JetStream().KeyValue(ctx, lease.DefaultBucket)
		require.NoError(t, err)
		st, err := kv.Status(ctx)
		require.NoError(t, err)
		return st.TTL()
	}
	ready := func(srv *admin.Server) {
		t.Helper()
		code, body := 0, ""
		for deadline := time.Now().Add(15 * time.Second); code != 200 && time.Now().Before(deadline); {
			code, body = httpGet(t, "http://"+srv.Addr()+"/readyz")
			time.Sleep(20 * time.Millisecond)
		}
		require.Equal(t, 200, code, "the host is ready: %s", body)
	}

	seen := &running{now: map[string]bool{}}
	srv, b, app := start("2s", seen)
	require.Eventually(t, func() bool { return seen.holder() == "host" }, 15*time.Second, 20*time.Millisecond)
	ready(srv)
	require.Equal(t, 2*time.Second, bucketTTL(b))
	app.RequireStop()

	seen = &running{now: map[string]bool{}}
	srv, b, app = start("3s", seen)
	require.Equal(t, 3*time.Second, bucketTTL(b), "the bucket has the configured TTL once the host started")
	require.Eventually(t, func() bool { return seen.holder() == "host" }, 15*time.Second, 20*time.Millisecond,
		"the exclusive source runs")
	ready(srv)
	code, body := httpGet(t, "http://"+srv.Addr()+"/readyz")
	require.Equal(t, 200, code, "the lease's check passes: %s", body)
	app.RequireStop()

	seen = &running{now: map[string]bool{}}
	starting := time.Now()
	srv, b, app = start("2s", seen)
	defer app.RequireStop()
	require.Equal(t, 2*time.Second, bucketTTL(b), "the bucket has the lowered TTL once the host started")
	require.Eventually(t, func() bool { return seen.holder() == "host" }, 15*time.Second, 20*time.Millisecond,
		"the exclusive source runs")
	ran := time.Since(starting)
	t.Logf("lowered TTL (3s -> 2s): the source runs %v after the host began to start", ran)
	require.GreaterOrEqual(t, ran, 3*time.Second, "the source ran before the old TTL passed since the change")
	ready(srv)
}
