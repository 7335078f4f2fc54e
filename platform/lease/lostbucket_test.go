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

	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// TestKVBucketLostIsSetUpAgain: the server loses the leases' bucket
// (restarted without its store, or the bucket deleted) while host A holds
// a lease. A's hold is lost, and the lease is held again afterwards, by
// A or B, each only after A's hold ended: the bucket is set up again
// instead of every attempt failing until the hosts restart (the exclusive
// source never running again), and not before every hold on the lost
// bucket has ended.
func TestKVBucketLostIsSetUpAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := natsURL(t)
	bucket := uniqueBucket(t)
	const ttl = 2 * time.Second
	a := newHost(t, url, bucket, "host-a", ttl)
	b := newHost(t, url, bucket, "host-b", ttl)
	ha := acquire(t, a.kv.Lease("imap/INBOX"), ttl+10*time.Second)

	js, err := jetstream.New(a.nc)
	require.NoError(t, err)
	require.NoError(t, js.DeleteKeyValue(ctx, bucket))
	deleted := time.Now()

	type took struct {
		who string
		at  time.Time
		h   interface{ Release(context.Context) error }
	}
	held := make(chan took, 2)
	cctx, cancel := context.WithTimeout(ctx, 8*ttl)
	defer cancel()
	var wg sync.WaitGroup
	contend := func(who string, h *host) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hold, err := h.kv.Lease("imap/INBOX").Acquire(cctx)
			if err == nil {
				held <- took{who: who, at: time.Now(), h: hold}
			}
		}()
	}
	contend("host-b", b)
	var aLost time.Time
	select {
	case <-ha.Lost():
		aLost = time.Now()
	case tk := <-held:
		t.Fatalf("%s took the lease while host-a still held it", tk.who)
	case <-time.After(2 * ttl):
		t.Fatal("host-a's hold outlived its bucket")
	}
	contend("host-a", a)
	select {
	case tk := <-held:
		require.True(t, tk.at.After(aLost), "%s took the lease before host-a's hold ended", tk.who)
		// A hold on the lost bucket, renewed at the latest just before
		// the loss, may be believed until three quarters of the TTL
		// after it (by a holder that learns nothing earlier): no lease
		// from the new bucket before then.
		require.GreaterOrEqual(t, tk.at.Sub(deleted), ttl*3/4, "%s took the lease from the new bucket too early", tk.who)
		require.NoError(t, tk.h.Release(context.Background()))
	case <-cctx.Done():
		t.Fatal("nobody holds the lease again: its bucket is gone for good")
	}
	cancel()
	wg.Wait() // the other contender gave up, or took it after the release
	select {
	case tk := <-held:
		require.NoError(t, tk.h.Release(context.Background()))
	default:
	}
}

// TestKVLeaseAfterTheServerLostItsStore: the server is restarted on the
// same address without its store while a host holds a lease and another
// waits for it. Both reconnect; the lease is held again, not before the
// first host's hold ended.
func TestKVLeaseAfterTheServerLostItsStore(t *testing.T) {
	t.Parallel()
	start := func(dir, listen string) *embedded.Server {
		opts, err := embedded.Config{StoreDir: dir, Listen: listen}.Options()
		require.NoError(t, err)
		srv, err := embedded.StartWithOptions(context.Background(), opts, 20*time.Second, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
		return srv
	}
	srv := start(t.TempDir(), "127.0.0.1:0")
	_, port, err := net.SplitHostPort(srv.NATS().Addr().String())
	require.NoError(t, err)
	const ttl = 2 * time.Second
	connect := func(holder string) *lease.KV {
		nc, err := nats.Connect(srv.ClientURL(), nats.Name(holder), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		kv, err := lease.OpenKV(context.Background(), js, lease.KVConfig{TTL: ttl, Holder: holder})
		require.NoError(t, err)
		return kv
	}
	a, b := connect("host-a"), connect("host-b")
	ha := acquire(t, a.Lease("imap/INBOX"), ttl+10*time.Second)

	require.NoError(t, srv.Shutdown(context.Background()))
	start(t.TempDir(), "127.0.0.1:"+port) // an empty store

	ctx, cancel := context.WithTimeout(t.Context(), 10*ttl)
	defer cancel()
	type took struct {
		at time.Time
		h  lease.Hold
	}
	held := make(chan took, 1)
	go func() {
		h, err := b.Lease("imap/INBOX").Acquire(ctx)
		if err == nil {
			held <- took{time.Now(), h}
		}
		close(held)
	}()
	var aLost time.Time
	select {
	case <-ha.Lost():
		aLost = time.Now()
	case <-time.After(2 * ttl):
		t.Fatal("host-a's hold outlived the server's store")
	}
	tk, ok := <-held
	require.True(t, ok, "host-b never holds the lease: its bucket is gone for good")
	require.True(t, tk.at.After(aLost), "host-b took the lease before host-a's hold ended")
	require.NoError(t, tk.h.Release(context.Background()))
}
