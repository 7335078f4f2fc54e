package lease_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// startServer starts an embedded server with its store in dir, listening
// on listen; it is shut down when t ends.
func startServer(t *testing.T, dir, listen string) *embedded.Server {
	t.Helper()
	opts, err := embedded.Config{StoreDir: dir, Listen: listen}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(context.Background(), opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv
}

// openKV connects as holder to url (reconnecting for ever) and opens the
// leases' bucket with ttl.
func openKV(t *testing.T, url, holder string, ttl time.Duration) *lease.KV {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name(holder), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := lease.OpenKV(context.Background(), js, lease.KVConfig{TTL: ttl, Holder: holder})
	require.NoError(t, err)
	return kv
}

// TestKVNoSecondHolderAfterTheServerLostItsStore: host A holds a lease
// and is cut off from the server (it learns nothing: it believes it holds
// the lease until it cannot have renewed it in time); the server then
// restarts without its store, and a host that starts meanwhile (B: it
// creates the bucket anew) and one that was waiting for the lease (C)
// contend for it. Neither holds the lease while A still believes it does.
func TestKVNoSecondHolderAfterTheServerLostItsStore(t *testing.T) {
	t.Parallel()
	const ttl = 3 * time.Second
	srv := startServer(t, t.TempDir(), "127.0.0.1:0")
	addr := srv.NATS().Addr().String()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	p := netfault.NewProxy(t, addr)
	a := openKV(t, "nats://"+p.Addr(), "host-a", ttl)
	c := openKV(t, srv.ClientURL(), "host-c", ttl)
	la := a.Lease("imap/INBOX")
	ha := acquire(t, la, 4*ttl)

	type took struct {
		who     string
		at      time.Time
		aHolds  bool // A's hold not lost yet when this host took the lease
		release func(context.Context) error
	}
	held := make(chan took, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 8*ttl)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait() // each contender gave up, or took the lease
		close(held)
		for tk := range held {
			require.False(t, tk.aHolds, "%s took the lease while host-a still held it", tk.who)
			require.NoError(t, tk.release(context.Background()))
		}
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		defer rcancel()
		_ = ha.Release(rctx) // lost by now, or cut off (after a failure): nothing to delete
	}()
	contend := func(who string, kv *lease.KV) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := kv.Lease("imap/INBOX").Acquire(ctx)
			if err != nil {
				return
			}
			tk := took{who: who, at: time.Now(), release: h.Release}
			select {
			case <-ha.Lost():
			default:
				tk.aHolds = true
			}
			held <- tk
		}()
	}
	contend("host-c", c)
	require.Eventually(t, func() bool { return c.Lease("imap/INBOX").Status().Holder == "host-a" },
		2*ttl, 10*time.Millisecond, "host-c waits behind host-a")

	// A is cut off just after a renewal: it believes it holds the lease
	// for three quarters of the TTL from then.
	rev := la.Status().Revision
	require.Eventually(t, func() bool { return la.Status().Revision > rev }, ttl, time.Millisecond, "host-a renews")
	p.Freeze()
	cut := time.Now()
	require.NoError(t, srv.Shutdown(context.Background()))
	startServer(t, t.TempDir(), "127.0.0.1:"+port) // an empty store
	restarted := time.Now()
	b := openKV(t, "nats://127.0.0.1:"+port, "host-b", ttl)
	contend("host-b", b)

	var aLost time.Time
	select {
	case <-ha.Lost():
		aLost = time.Now()
	case tk := <-held:
		t.Fatalf("%s took the lease %v after the restart while host-a still held it (cut off %v before)",
			tk.who, tk.at.Sub(restarted), tk.at.Sub(cut))
	case <-time.After(2 * ttl):
		t.Fatal("host-a's hold outlived the server's store")
	}
	t.Logf("host-a cut off; server restarted %v later; host-a's hold lost %v after the cut", restarted.Sub(cut), aLost.Sub(cut))
	var tk took
	select {
	case tk = <-held:
	case <-ctx.Done():
		t.Fatal("nobody holds the lease again")
	}
	t.Logf("%s took the lease %v after the restart", tk.who, tk.at.Sub(restarted))
	require.False(t, tk.aHolds, "%s took the lease while host-a still held it", tk.who)
	require.True(t, tk.at.After(aLost))
	require.NoError(t, tk.release(context.Background()))
}
