package platform_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
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
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/queue"
	queuejs "github.com/plba/plba/platform/queue/jetstream"
)

// Hosts of two deployments share one NATS server under their own stream
// prefixes: each one's audit goes to its own stream (the prefix with
// _AUDIT), where both wrote to PLBA_AUDIT and one deployment's operators
// read the other's records. A stream set in admin.audit.stream is used
// whatever the prefix.
func TestAuditStreamFollowsTheStreamPrefix(t *testing.T) {
	t.Parallel()
	url := natsURL(t)
	id := fmt.Sprintf("T%d", time.Now().UnixNano())
	natstest.DeleteStreamsAtCleanup(t, url, id)
	start := func(prefix string, sets ...string) *admin.Server {
		cfg := load(t, append([]string{"queue.backend=jetstream", "queue.jetstream.url=" + url, "queue.jetstream.stream_prefix=" + prefix,
			"sources.lease.bucket=leases_" + id, "sources.lease.marks_bucket=marks_" + id}, sets...)...)
		app, srv := startPlatform(t, cfg)
		t.Cleanup(app.RequireStop)
		return srv
	}
	setLevel := func(srv *admin.Server, level string) {
		req, err := http.NewRequest(http.MethodPut, "http://"+srv.Addr()+admin.LogLevelPath, strings.NewReader(`{"level":"`+level+`"}`))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	a, b := start(id+"-A"), start(id+"-B")
	own := id + "_OWN_AUDIT"
	c := start(id+"-C", "admin.audit.stream="+own)
	setLevel(a, "warn")
	setLevel(b, "debug")
	setLevel(c, "info")

	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	levels := func(stream string) []string {
		st, err := js.Stream(ctx, stream)
		require.NoError(t, err, "the audit stream %q", stream)
		var got []string
		n := st.CachedInfo().State.Msgs
		for seq := uint64(1); uint64(len(got)) < n; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if errors.Is(err, njs.ErrMsgNotFound) {
				continue
			}
			require.NoError(t, err)
			for _, l := range []string{"warn", "debug", "info"} {
				if strings.Contains(string(m.Data), `"to":"`+l+`"`) {
					got = append(got, l)
				}
			}
		}
		return got
	}
	require.Equal(t, []string{"warn"}, levels(id+"-A_AUDIT"), "host A's audit, in its prefix's stream")
	require.Equal(t, []string{"debug"}, levels(id+"-B_AUDIT"), "host B's audit, in its prefix's stream")
	require.Equal(t, []string{"info"}, levels(own), "the stream set in admin.audit.stream")
	_, err = js.Stream(ctx, id+"-C_AUDIT")
	require.ErrorIs(t, err, njs.ErrStreamNotFound, "a stream set in admin.audit.stream wins over the prefix")
}

// A stream prefix so long that the audit stream's name is over the
// server's 255 bytes is a configuration problem naming the prefix's key
// (the host exits 2), rather than a start the server refuses.
func TestAuditStreamNameTooLongIsAConfigProblem(t *testing.T) {
	t.Parallel()
	prefix := strings.Repeat("P", 250)
	cfg := load(t, "queue.backend=jetstream", "queue.jetstream.url=nats://127.0.0.1:1", "queue.jetstream.stream_prefix="+prefix)
	app := fx.New(fx.NopLogger, platform.Module(cfg, platform.Info{}), fx.Invoke(func(admin.AuditStore) {}))
	var ce *config.Error
	require.ErrorAs(t, app.Err(), &ce, "%v", app.Err())
	require.Equal(t, "queue.jetstream.stream_prefix", ce.Problems[0].Key, "%v", ce)
	require.Contains(t, ce.Problems[0].Msg, "longer than the 255 bytes")
}

// auditStoreErr builds the platform with sets on a JetStream backend
// that is not connected to (fx.New only) and returns what providing the
// audit store gave.
func auditStoreErr(t *testing.T, sets ...string) error {
	t.Helper()
	cfg := load(t, append([]string{"queue.backend=jetstream", "queue.jetstream.url=nats://127.0.0.1:1"}, sets...)...)
	return fx.New(fx.NopLogger, platform.Module(cfg, platform.Info{}), fx.Invoke(func(admin.AuditStore) {})).Err()
}

// An admin.audit.stream that names one of the host's own streams (a work
// stream, the dead letters, the finished keys, an advisory stream, a
// key-value bucket's) is a configuration problem at the key (exit 2):
// setting the audit stream up would have changed that stream's subjects
// and limits to the audit's and written the audit into it. Names that
// only resemble them, or another prefix's, are fine.
func TestAuditStreamOnAHostStreamIsAConfigProblem(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"PLBA_Q_orders", "PLBA_Q_mailorder", "PLBA_DEAD", "PLBA_DONE", "PLBA_ADV_plba-workers", "PLBA_ADV_other",
		"KV_PLBA_OVERRIDES", "KV_plba_leases", "KV_plba_schedule_marks", "KV_anything", "OBJ_files",
	} {
		err := auditStoreErr(t, "admin.audit.stream="+name)
		var ce *config.Error
		require.ErrorAs(t, err, &ce, "%s: %v", name, err)
		require.Equal(t, "admin.audit.stream", ce.Problems[0].Key, "%s: %v", name, ce)
		require.Contains(t, ce.Problems[0].Msg, `the audit stream "`+name+`" is `, "%s", name)
	}
	err := auditStoreErr(t, "queue.jetstream.stream_prefix=SHOP", "admin.audit.stream=SHOP_Q_orders")
	require.ErrorContains(t, err, "SHOP_Q_<queue>", "the host's own prefix")
	for _, sets := range [][]string{
		{"admin.audit.stream=MY_AUDIT"},
		{"admin.audit.stream=PLBA_AUDIT"},
		{"admin.audit.stream=PLBA_QUEUE"},
		{"admin.audit.stream=PLBA_DEADLETTERS"},
		{"admin.audit.stream=OTHER_Q_orders"}, // another prefix's name, not this host's
		{"queue.jetstream.stream_prefix=SHOP", "admin.audit.stream=PLBA_DEAD"},
		{"queue.jetstream.stream_prefix=SHOP"},
	} {
		require.NoError(t, auditStoreErr(t, sets...), "%v", sets)
	}
}

// Every stream a started host made on its server (its queues', the dead
// letters', the finished keys', the advisories', the pool overrides'
// bucket) is refused as the audit stream: the names the check knows are
// the ones the backend uses.
func TestAuditStreamRefusesEveryStreamTheHostMakes(t *testing.T) {
	t.Parallel()
	url := natsURL(t)
	id := fmt.Sprintf("T%d", time.Now().UnixNano())
	natstest.DeleteStreamsAtCleanup(t, url, id)
	sets := []string{"queue.backend=jetstream", "queue.jetstream.url=" + url, "queue.jetstream.stream_prefix=" + id,
		"sources.lease.bucket=leases_" + id, "sources.lease.marks_bucket=marks_" + id}
	var b queue.Backend
	app := fxtest.New(t, platform.Module(load(t, sets...), platform.Info{}), fx.Populate(&b))
	app.RequireStart()
	defer app.RequireStop()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	jb := b.(*queuejs.Backend)
	require.NoError(t, jb.Declare(ctx, "orders", "mail.in"))
	_, err := jb.Overrides().Load(ctx)
	require.NoError(t, err)

	var made []string
	names := jb.JetStream().StreamNames(ctx)
	for n := range names.Name() {
		if strings.Contains(n, id) && n != id+admin.AuditStreamSuffix {
			made = append(made, n)
		}
	}
	require.NoError(t, names.Err())
	t.Logf("the host's streams: %v", made)
	for _, want := range []string{id + "_Q_orders", id + "_DEAD", id + "_DONE", "KV_" + id + "_OVERRIDES"} {
		require.Contains(t, made, want)
	}
	for _, n := range made {
		err := auditStoreErr(t, append(sets, "admin.audit.stream="+n)...)
		var ce *config.Error
		require.ErrorAs(t, err, &ce, "the host's stream %s as the audit stream: %v", n, err)
		require.Equal(t, "admin.audit.stream", ce.Problems[0].Key, "%s", n)
	}
}
