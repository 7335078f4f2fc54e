package jetstream_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// startServer starts a listening embedded server on addr storing in dir
// and shuts it down when tb ends.
func startServer(tb testing.TB, dir, addr string, tweak func(*server.Options)) *embedded.Server {
	tb.Helper()
	opts, err := embedded.Config{StoreDir: dir, Listen: addr}.Options()
	require.NoError(tb, err)
	if tweak != nil {
		tweak(opts)
	}
	srv, err := embedded.StartWithOptions(context.Background(), opts, 10*time.Second, nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCheckAndReconnect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServer(t, dir, "127.0.0.1:0", nil)
	url := srv.ClientURL()
	_, port, err := net.SplitHostPort(srv.NATS().Addr().String())
	require.NoError(t, err)

	b := openBackend(t, jetstream.Config{URL: url, AckWait: time.Second})
	ctx := t.Context()
	require.Equal(t, jetstream.ModeExternal, b.Config().Mode)
	require.NoError(t, b.Check(ctx))
	hc := b.HealthCheck()
	require.True(t, hc.Gating)
	require.NoError(t, hc.Func(ctx))
	st := b.Status()
	require.True(t, st.Connected)
	require.Equal(t, "CONNECTED", st.State)

	// Work survives the server going away and coming back on the same
	// store.
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "reconnect", Payload: []byte("before")}))
	require.NoError(t, srv.Shutdown(ctx))
	// The disconnect handler runs on nats.go's callback goroutine, a moment
	// after the connection state changes: wait for both.
	waitFor(t, 10*time.Second, "disconnect", func() bool { st := b.Status(); return !st.Connected && st.Disconnects >= 1 })
	require.ErrorIs(t, b.Check(ctx), jetstream.ErrUnreachable)
	st = b.Status()
	require.GreaterOrEqual(t, st.Disconnects, uint64(1))
	require.Equal(t, "RECONNECTING", st.State)

	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	startServer(t, dir, fmt.Sprintf("127.0.0.1:%d", p), nil)
	waitFor(t, 20*time.Second, "reconnect", func() bool { return b.Check(ctx) == nil && b.Status().Reconnects >= 1 })

	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ds, err := b.Lease(lctx, "reconnect", 1, time.Second)
	require.NoError(t, err)
	require.Equal(t, "before", string(ds[0].Task.Payload))
	require.NoError(t, b.Ack(ctx, ds[0]))
}

func TestCheckLifecycle(t *testing.T) {
	t.Parallel()
	b, err := jetstream.New(jetstream.Params{Config: embeddedConfig(t.TempDir())})
	require.NoError(t, err)
	require.ErrorIs(t, b.Check(t.Context()), jetstream.ErrNotStarted)
	_, err = b.Lease(t.Context(), "q", 1, time.Second)
	require.ErrorIs(t, err, jetstream.ErrNotStarted)
	require.NoError(t, b.Start(t.Context()))
	require.NoError(t, b.Start(t.Context()), "Start is idempotent")
	require.NoError(t, b.Check(t.Context()))
	require.NoError(t, b.Close(t.Context()))
	require.ErrorIs(t, b.Check(t.Context()), queue.ErrClosed)
	require.False(t, b.Status().Connected)
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	user, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := user.PublicKey()
	require.NoError(t, err)
	seed, err := user.Seed()
	require.NoError(t, err)

	tokenSrv := startServer(t, t.TempDir(), "127.0.0.1:0", func(o *server.Options) { o.Authorization = "s3cret" })
	nkeySrv := startServer(t, t.TempDir(), "127.0.0.1:0", func(o *server.Options) {
		o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	})
	for _, tc := range []struct {
		name string
		cfg  jetstream.Config
		ok   bool
	}{
		{"token", jetstream.Config{URL: tokenSrv.ClientURL(), Token: "s3cret"}, true},
		{"wrong token", jetstream.Config{URL: tokenSrv.ClientURL(), Token: "guess"}, false},
		{"nkey", jetstream.Config{URL: nkeySrv.ClientURL(), NKeySeed: string(seed)}, true},
		{"no nkey", jetstream.Config{URL: nkeySrv.ClientURL()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.ConnectTimeout = 2 * time.Second
			b, err := jetstream.Open(t.Context(), jetstream.Params{Config: tc.cfg})
			if !tc.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.NoError(t, b.Check(t.Context()))
			require.NoError(t, b.Close(t.Context()))
		})
	}
	_, err = jetstream.Open(t.Context(), jetstream.Params{Config: jetstream.Config{URL: nkeySrv.ClientURL(), NKeySeed: "not a seed"}})
	require.ErrorIs(t, err, jetstream.ErrBadCredentials)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  jetstream.Config
		bad  bool
	}{
		{"zero value", jetstream.Config{}, false},
		{"url list", jetstream.Config{URL: "nats://a:4222, nats://b:4222"}, false},
		{"replicas 3 external", jetstream.Config{URLs: []string{"nats://a:4222"}, Replicas: 3}, false},
		{"replicas 2", jetstream.Config{URLs: []string{"nats://a:4222"}, Replicas: 2}, true},
		{"replicas 3 embedded", jetstream.Config{Replicas: 3}, true},
		{"embedded with urls", jetstream.Config{Mode: jetstream.ModeEmbedded, URL: "nats://a:4222"}, true},
		{"external without urls", jetstream.Config{Mode: jetstream.ModeExternal}, true},
		{"two auth methods", jetstream.Config{URL: "nats://a", Token: "t", User: "u"}, true},
		{"storage", jetstream.Config{Storage: "tape"}, true},
		{"sync always embedded", jetstream.Config{Sync: "always"}, false},
		{"sync bogus", jetstream.Config{Sync: "sometimes"}, true},
		{"sync always external", jetstream.Config{URL: "nats://a", Sync: "always"}, true},
		{"negative window", jetstream.Config{DuplicateWindow: -time.Second}, true},
		{"bad prefix", jetstream.Config{StreamPrefix: "a.b"}, true},
		{"url without host", jetstream.Config{URL: "nats://:4222"}, true},
		{"url bad port", jetstream.Config{URL: "nats://a:99999"}, true},
		{"url bad scheme", jetstream.Config{URL: "http://a:4222"}, true},
		{"url malformed", jetstream.Config{URL: "nats://[::1"}, true},
		{"url in list", jetstream.Config{URLs: []string{"nats://a:4222", "nats://b:x"}}, true},
		{"url without scheme", jetstream.Config{URL: "a:4222"}, false},
		{"url with user", jetstream.Config{URL: "nats://u:p@a:4222"}, false},
		{"cert without key", jetstream.Config{URL: "tls://a", TLS: jetstream.TLSConfig{CertFile: "c"}}, true},
		{"fixed prefetch", jetstream.Config{Prefetch: 32, MaxPrefetch: 32}, false},
		{"max prefetch below prefetch", jetstream.Config{Prefetch: 32, MaxPrefetch: 16}, true},
		{"prefetch above the default max", jetstream.Config{Prefetch: 4096}, false},
		// The client makes a buffer of the fetch's size: MaxInt64 panicked
		// in makechan at the first fetch.
		{"prefetch out of range", jetstream.Config{Prefetch: math.MaxInt64}, true},
		{"max prefetch out of range", jetstream.Config{MaxPrefetch: 1_000_000_000}, true},
		{"max prefetch at its bound", jetstream.Config{MaxPrefetch: jetstream.PrefetchLimit}, false},
	} {
		err := tc.cfg.Validate()
		if tc.bad {
			require.ErrorIs(t, err, jetstream.ErrInvalidConfig, tc.name)
		} else {
			require.NoError(t, err, tc.name)
		}
	}
	c := jetstream.Config{Sync: "always"}.WithDefaults()
	require.Equal(t, embedded.SyncAlways, c.Embedded.Sync)
	require.Equal(t, jetstream.ModeExternal, jetstream.Config{URL: "nats://a"}.WithDefaults().Mode)
	require.Equal(t, 4096, jetstream.Config{Prefetch: 4096}.WithDefaults().MaxPrefetch, "the max is at least the least")
}
