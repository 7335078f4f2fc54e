package platform_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/internal/natstest"
	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// natsURL is PLBA_TEST_NATS_URL, or a NATS server the test starts on a
// free loopback port.
func natsURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("PLBA_TEST_NATS_URL"); u != "" {
		natstest.KeepStreamDir(u)
		return u
	}
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(context.Background(), opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv.ClientURL()
}

// watcher is an exclusive source standing for a mailbox: it records which
// hosts run it at the same time.
type watcher struct {
	host string
	seen *running
}

func (w *watcher) Name() string    { return "mailbox" }
func (w *watcher) Exclusive() bool { return true }
func (w *watcher) Run(ctx context.Context, _ source.Emitter) error {
	w.seen.enter(w.host)
	defer w.seen.leave(w.host)
	<-ctx.Done()
	return nil
}

type running struct {
	mu      sync.Mutex
	now     map[string]bool
	overlap []string
	ran     []string
}

func (r *running) enter(h string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for o := range r.now {
		r.overlap = append(r.overlap, h+" started while "+o+" ran")
	}
	r.now[h] = true
	r.ran = append(r.ran, h)
}

func (r *running) leave(h string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.now, h)
}

func (r *running) holder() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for h := range r.now {
		return h
	}
	return ""
}

// Two hosts on one NATS server: the exclusive source runs on one of them
// at a time, its status names the holder on both, and when the holder
// stops the other takes over; a schedule on both hosts runs each due time
// once.
func TestExclusiveSourcesAndSchedulesOnceAcrossHosts(t *testing.T) {
	t.Parallel()
	url := natsURL(t)
	id := fmt.Sprintf("T%d", time.Now().UnixNano())
	natstest.DeleteStreamsAtCleanup(t, url, id)
	seen := &running{now: map[string]bool{}}
	var (
		mu    sync.Mutex
		ticks = map[string]int{}
	)
	start := func(host string) (*fxtest.App, *admin.Server) {
		var srv *admin.Server
		cfg := load(t, "queue.backend=jetstream", "queue.jetstream.url="+url, "queue.jetstream.stream_prefix="+id,
			"sources.lease.bucket=leases_"+id, "sources.lease.marks_bucket=marks_"+id, "sources.lease.ttl=2s",
			"sources.lease.holder="+host)
		app := fxtest.New(t, platform.Module(cfg, platform.Info{}),
			fx.Provide(source.AsSource(func() *watcher { return &watcher{host: host, seen: seen} })),
			fx.Provide(source.AsSource(func() (*source.Schedule, error) { return source.Every("tick", time.Second, "tick") })),
			worker.SupplyRoute(task.Route{Kind: "tick", Queue: "ticks", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
				mu.Lock()
				ticks[tk.Header(source.HeaderScheduledAt)]++
				mu.Unlock()
				return nil
			})}),
			fx.Populate(&srv))
		app.RequireStart()
		return app, srv
	}
	apps := map[string]*fxtest.App{}
	var srvA, srvB *admin.Server
	apps["host-a"], srvA = start("host-a")
	apps["host-b"], srvB = start("host-b")

	require.Eventually(t, func() bool { return seen.holder() != "" }, 10*time.Second, 20*time.Millisecond)
	first := seen.holder()
	other := map[string]string{"host-a": "host-b", "host-b": "host-a"}[first]
	defer apps[other].RequireStop()
	// Both hosts' status name the holder of the mailbox's lease.
	require.Eventually(t, func() bool {
		return leaseHolder(t, srvA, "mailbox") == first && leaseHolder(t, srvB, "mailbox") == first
	}, 10*time.Second, 50*time.Millisecond)
	time.Sleep(3 * time.Second) // the schedule ticks meanwhile

	// The holder stops (releasing the lease): the other host takes over.
	stopped := time.Now()
	apps[first].RequireStop()
	require.Eventually(t, func() bool { return seen.holder() == other }, 10*time.Second, 20*time.Millisecond)
	t.Logf("hand-over after the holder stopped: %v", time.Since(stopped))
	srvOther := map[string]*admin.Server{"host-a": srvA, "host-b": srvB}[other]
	require.Eventually(t, func() bool {
		return strings.Contains(metrics(t, srvOther), `plba_lease_handovers_total{lease="source/mailbox"`)
	}, 10*time.Second, 50*time.Millisecond, "the hand-over is counted")
	time.Sleep(2 * time.Second)

	seen.mu.Lock()
	require.Empty(t, seen.overlap, "never two hosts at once")
	seen.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(ticks), 4, "the schedule ran every second: %v", ticks)
	for at, n := range ticks {
		require.Equal(t, 1, n, "due time %s ran %d times", at, n)
	}
}

func metrics(t *testing.T, srv *admin.Server) string {
	t.Helper()
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// leaseHolder reads the holder of source name's lease from the host's
// status.
func leaseHolder(t *testing.T, srv *admin.Server, name string) string {
	t.Helper()
	for _, c := range status(t, srv)["components"].([]any) {
		m := c.(map[string]any)
		if m["name"] != source.ComponentPrefix+name {
			continue
		}
		d, _ := m["details"].(map[string]any)
		x, _ := d["details"].(map[string]any)
		l, _ := x["lease"].(map[string]any)
		h, _ := l["holder"].(string)
		return h
	}
	return ""
}
