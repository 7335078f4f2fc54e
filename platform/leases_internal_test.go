package platform

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// testJetStream connects to PLBA_TEST_NATS_URL, or to a NATS server the
// test starts on a free loopback port.
func testJetStream(t *testing.T) njs.JetStream {
	t.Helper()
	url := os.Getenv("PLBA_TEST_NATS_URL")
	if url == "" {
		opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
		require.NoError(t, err)
		srv, err := embedded.StartWithOptions(context.Background(), opts, 20*time.Second, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
		url = srv.ClientURL()
	}
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := njs.New(nc)
	require.NoError(t, err)
	return js
}

// TestLazyLeaseAcquireWaitsForItsBucket: Acquire of an exclusive source's
// lease blocks until the lease is held, retrying with back-off while its
// bucket cannot be opened (the JetStream backend not started yet, NATS not
// reachable), as lease.Lease promises; Status shows the last error
// meanwhile. Before, Acquire returned that error at once: the exclusive
// source's Run failed, and the source showed failed and was restarted
// with the supervisor's back-off.
func TestLazyLeaseAcquireWaitsForItsBucket(t *testing.T) {
	t.Parallel()
	js := testJetStream(t)
	var calls atomic.Int64
	k := &lazyKV{
		js: func() njs.JetStream {
			if calls.Add(1) <= 2 { // the backend has not started: no JetStream yet
				return nil
			}
			return js
		},
		cfg:    lease.KVConfig{Bucket: fmt.Sprintf("plba_test_lazy_lease_%d", time.Now().UnixNano()), TTL: 3 * time.Second, Holder: "h1"},
		leases: map[string]*lazyLease{},
	}
	t.Cleanup(func() { _ = js.DeleteKeyValue(context.Background(), k.cfg.Bucket) })
	l := k.Lease("mailbox")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	h, err := l.Acquire(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, calls.Load(), int64(3), "it tried again")
	require.True(t, l.Status().Held)
	require.NoError(t, h.Release(ctx))
}

// TestLazyLeaseAcquireEndsWithItsContext: while the bucket cannot be
// opened, Acquire returns ctx's error once ctx ends, and Status shows why
// the lease is not held.
func TestLazyLeaseAcquireEndsWithItsContext(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	k := &lazyKV{
		js:     func() njs.JetStream { calls.Add(1); return nil },
		cfg:    lease.KVConfig{Bucket: "unused", TTL: 3 * time.Second, Holder: "h1"},
		leases: map[string]*lazyLease{},
	}
	l := k.Lease("mailbox")
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err := l.Acquire(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Greater(t, calls.Load(), int64(1), "it tried again before ctx ended")
	require.Contains(t, l.Status().LastError, "has not started")
}
