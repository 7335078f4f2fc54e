package platform_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/internal/natstest"
	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
)

// A host whose exclusive source can never take its lease (here: the
// cluster's lease bucket has another TTL than this host's, which the
// sources.lease docs say makes a host fail to take any lease; the bucket
// is made by another host after this one's start checked it, which a
// bucket there before refuses: TestBackendStartChecksTheLeasesBucket) is
// not ready, and says why: before, it answered /readyz 200 while its
// mailbox waited for ever, as a standby would. A host whose lease store
// works is ready, whether it holds the lease or not.
func TestUnobtainableLeaseMakesTheHostNotReady(t *testing.T) {
	t.Parallel()
	url := natsURL(t)
	id := fmt.Sprintf("T%d", time.Now().UnixNano())
	natstest.DeleteStreamsAtCleanup(t, url, id)
	bucket := "leases_" + id
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = js.CreateKeyValue(ctx, njs.KeyValueConfig{Bucket: bucket, TTL: 5 * time.Second, History: 1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = js.DeleteKeyValue(context.Background(), bucket) })

	seen := &running{now: map[string]bool{}}
	start := func(host, bucket, ttl string, opts ...fx.Option) *admin.Server {
		var srv *admin.Server
		cfg := load(t, "queue.backend=jetstream", "queue.jetstream.url="+url, "queue.jetstream.stream_prefix="+id,
			"sources.lease.bucket="+bucket, "sources.lease.marks_bucket=marks_"+id, "sources.lease.ttl="+ttl,
			"sources.lease.holder="+host, "health.interval=100ms")
		app := fxtest.New(t, fx.Module("test", opts...), platform.Module(cfg, platform.Info{}),
			fx.Provide(source.AsSource(func() *watcher { return &watcher{host: host, seen: seen} })),
			fx.Populate(&srv))
		app.RequireStart()
		t.Cleanup(app.RequireStop)
		return srv
	}
	readyz := func(srv *admin.Server) (int, string) {
		return httpGet(t, "http://"+srv.Addr()+"/readyz")
	}

	good := start("host-good", bucket, "5s")
	require.Eventually(t, func() bool { return seen.holder() == "host-good" }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { c, _ := readyz(good); return c == 200 }, 10*time.Second, 20*time.Millisecond,
		"the holder is ready")

	other := start("host-other", bucket, "5s")
	require.Eventually(t, func() bool { c, _ := readyz(other); return c == 200 }, 10*time.Second, 20*time.Millisecond,
		"a standby whose lease store works is ready")

	// Another host makes the bucket between this host's start and its
	// first lease: in a module of its own, listed before the platform's
	// (whose invokes build the runtime), the hook comes after the
	// backend's start (it needs the backend) and before the sources'.
	late := "late_" + id
	t.Cleanup(func() { _ = js.DeleteKeyValue(context.Background(), late) })
	wrong := start("host-wrong-ttl", late, "2s", fx.Invoke(func(lc fx.Lifecycle, _ queue.Backend) {
		lc.Append(fx.Hook{OnStart: func(ctx context.Context) error {
			_, err := js.CreateKeyValue(ctx, njs.KeyValueConfig{Bucket: late, TTL: 5 * time.Second, History: 1})
			return err
		}})
	}))
	code, body := readyz(wrong)
	for deadline := time.Now().Add(10 * time.Second); code != 503 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		code, body = readyz(wrong)
	}
	require.Equal(t, 503, code, "a host that cannot take its source's lease says it is ready: %s", body)
	t.Logf("the host with the other TTL: %d %s", code, body)
	require.Contains(t, body, "check lease/source/mailbox")
	require.Contains(t, body, "ttl")
	c, _ := readyz(good)
	require.Equal(t, 200, c)
	require.Equal(t, []string{"host-good"}, seen.ran, "only the holder ran the source")
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}
