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

	"github.com/plba/plba/internal/natstest"
	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/config"
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
