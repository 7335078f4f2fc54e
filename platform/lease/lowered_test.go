package lease_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
	"github.com/plba/plba/platform/lease"
)

// jsFor connects to url and returns its JetStream context.
func jsFor(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

// openKVIn is openKV on bucket.
func openKVIn(t *testing.T, url, bucket, holder string, ttl time.Duration) *lease.KV {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name(holder), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := lease.OpenKV(context.Background(), js, lease.KVConfig{Bucket: bucket, TTL: ttl, Holder: holder})
	require.NoError(t, err)
	return kv
}

// overlapAfterCut holds the lease as host-a (TTL old, behind a proxy),
// lowers the bucket's TTL to new with lower, waits until host-a's status
// says so (a renewal since), then starts host-b (TTL new) contending and
// cuts host-a off just after its next renewal. It fails when host-b holds
// the lease while host-a's hold is not lost yet.
func overlapAfterCut(t *testing.T, old, new time.Duration, lower func(ctx context.Context, js jetstream.JetStream, bucket string)) {
	t.Helper()
	srv := startServer(t, t.TempDir(), "127.0.0.1:0")
	addr := srv.NATS().Addr().String()
	p := netfault.NewProxy(t, addr)
	const bucket = "plba_test_lowered"
	a := openKVIn(t, "nats://"+p.Addr(), bucket, "host-a", old)
	la := a.Lease("imap/INBOX")
	ha := acquire(t, la, old+10*time.Second)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	lower(ctx, jsFor(t, srv.ClientURL()), bucket)
	rev := la.Status().Revision
	require.Eventually(t, func() bool { return la.Status().Revision > rev }, old, time.Millisecond,
		"host-a renews after the change")

	b := openKVIn(t, srv.ClientURL(), bucket, "host-b", new)
	type took struct {
		at     time.Time
		aHolds bool
		h      lease.Hold
	}
	got := make(chan took, 1)
	bctx, bcancel := context.WithTimeout(t.Context(), 3*old)
	defer bcancel()
	go func() {
		h, err := b.Lease("imap/INBOX").Acquire(bctx)
		if err != nil {
			close(got)
			return
		}
		tk := took{at: time.Now(), h: h}
		select {
		case <-ha.Lost():
		default:
			tk.aHolds = true
		}
		got <- tk
	}()

	// host-a is cut off just after a renewal: it believes its hold for
	// three quarters of the TTL it counts on from then.
	rev = la.Status().Revision
	require.Eventually(t, func() bool { return la.Status().Revision > rev }, old, time.Millisecond, "host-a renews")
	p.Freeze()
	cut := time.Now()
	// This renewal, and its look at the bucket, came after the change.
	st := la.Status()
	t.Logf("host-a after the bucket was lowered: %+v", st)
	require.True(t, st.Held, "host-a still holds the lease")
	var aLost time.Time
	select {
	case <-ha.Lost():
		aLost = time.Now()
	case tk, ok := <-got:
		if ok {
			_ = tk.h.Release(context.Background())
			t.Fatalf("host-b took the lease %v after host-a was cut off, while host-a still held it", tk.at.Sub(cut))
		}
		t.Fatal("host-b gave up")
	case <-time.After(2 * old):
		t.Fatal("host-a's hold outlived its cut-off")
	}
	t.Logf("host-a's hold lost %v after the cut (ttl %v, bucket's %v)", aLost.Sub(cut), old, new)
	require.Less(t, aLost.Sub(cut), new, "host-a counts on the bucket's TTL")
	tk, ok := <-got
	require.True(t, ok, "host-b takes the lease")
	defer func() { _ = tk.h.Release(context.Background()) }()
	t.Logf("host-b took the lease %v after the cut", tk.at.Sub(cut))
	require.False(t, tk.aHolds, "host-b took the lease while host-a still held it")
	require.Contains(t, st.LastError, "has ttl "+new.String()+", configured "+old.String(),
		"host-a's status says that the bucket's TTL is not its own")
	rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
	defer rcancel()
	_ = ha.Release(rctx)
}

// TestKVHolderUnderALoweredTTLDoesNotOverlap: host-a holds a lease with a
// TTL of 3 s; a host that owns the server lowers the bucket's TTL to 1 s
// (ApplyKV) and a host configured with 1 s contends. host-a, cut off just
// after a renewal, believed its hold for three quarters of 3 s while its
// key expired after 1 s: the other host took the lease meanwhile. Now
// host-a counts on the bucket's TTL once it saw it, and no host takes a
// lease from the bucket until the old TTL has passed since the change.
func TestKVHolderUnderALoweredTTLDoesNotOverlap(t *testing.T) {
	t.Parallel()
	overlapAfterCut(t, 3*time.Second, time.Second, func(ctx context.Context, js jetstream.JetStream, bucket string) {
		require.NoError(t, lease.ApplyKV(ctx, js, lease.KVConfig{Bucket: bucket, TTL: time.Second}))
	})
}

// TestKVHolderCountsOnABucketTTLLoweredByHand: the same with the bucket
// lowered by hand (nats kv edit), which leaves no mark of the change:
// host-a counts on the bucket's TTL from its first renewal after it, and
// its status says that the bucket's TTL is not its own.
func TestKVHolderCountsOnABucketTTLLoweredByHand(t *testing.T) {
	t.Parallel()
	overlapAfterCut(t, 3*time.Second, time.Second, func(ctx context.Context, js jetstream.JetStream, bucket string) {
		kv, err := js.KeyValue(ctx, bucket)
		require.NoError(t, err)
		st, err := kv.Status(ctx)
		require.NoError(t, err)
		cfg := st.(*jetstream.KeyValueBucketStatus).Config()
		cfg.TTL = time.Second
		_, err = js.UpdateKeyValue(ctx, cfg)
		require.NoError(t, err)
	})
}

// TestKVHolderRenewingSlowerThanTheLoweredTTLDoesNotOverlap: host-a holds
// a lease with a TTL of 6 s, renewing every 1.5 s; the bucket's TTL is
// lowered to 1 s (ApplyKV), so that host-a's key expires before its next
// renewal, and a host configured with 1 s took the lease then, while
// host-a believed it held it. Now host-a finds its key gone at that
// renewal and lets go, and the other host takes the lease only once the
// old TTL has passed since the change; or, when the server purged the key
// only after that renewal, host-a renews within the bucket's TTL from
// then and keeps the lease.
func TestKVHolderRenewingSlowerThanTheLoweredTTLDoesNotOverlap(t *testing.T) {
	t.Parallel()
	const old, new = 6 * time.Second, time.Second
	srv := startServer(t, t.TempDir(), "127.0.0.1:0")
	const bucket = "plba_test_lowered_slow"
	js := jsFor(t, srv.ClientURL())
	a := openKVIn(t, srv.ClientURL(), bucket, "host-a", old)
	la := a.Lease("imap/INBOX")
	ha := acquire(t, la, old+10*time.Second)
	defer func() { _ = ha.Release(context.Background()) }()

	// Just after a renewal, so that the key outlives the change.
	rev := la.Status().Revision
	require.Eventually(t, func() bool { return la.Status().Revision > rev }, old, time.Millisecond, "host-a renews")
	changed := time.Now()
	require.NoError(t, lease.ApplyKV(t.Context(), js, lease.KVConfig{Bucket: bucket, TTL: new}))
	b := openKVIn(t, srv.ClientURL(), bucket, "host-b", new)
	ctx, cancel := context.WithTimeout(t.Context(), old+3*time.Second)
	defer cancel()
	hb, err := b.Lease("imap/INBOX").Acquire(ctx)
	if err != nil {
		require.ErrorIs(t, err, context.DeadlineExceeded)
		select {
		case <-ha.Lost():
			t.Fatalf("host-a lost its hold (%s), and host-b never took the lease", la.Status().LastError)
		default:
		}
		st := la.Status()
		t.Logf("host-a keeps the lease: %+v", st)
		require.True(t, st.Held)
		require.Contains(t, st.LastError, "counting on 1s")
		return
	}
	took := time.Now()
	defer func() { _ = hb.Release(context.Background()) }()
	select {
	case <-ha.Lost():
	default:
		t.Fatalf("host-b took the lease %v after the bucket's TTL was lowered while host-a held it", took.Sub(changed))
	}
	t.Logf("host-a: %s; host-b took the lease %v after the change", la.Status().LastError, took.Sub(changed))
	require.GreaterOrEqual(t, took.Sub(changed), old, "host-b took the lease before the old TTL passed since the change")
}

// TestApplyKVLoweringTheTTLDelaysLeases: a host that lowers the bucket's
// TTL (ApplyKV) takes no lease from it until the old TTL has passed since
// the change, so that a holder counting on the old TTL has renewed into
// the change, or let go; its Status says from when. An unchanged or
// raised TTL adds no delay. The mark of the change keeps the bucket as
// hosts open and check it.
func TestApplyKVLoweringTheTTLDelaysLeases(t *testing.T) {
	t.Parallel()
	// A server of its own: PLBA_TEST_NATS_URL may name one before 2.10,
	// which keeps no mark of the change (ApplyKV refuses to lower the TTL).
	srv := startServer(t, t.TempDir(), "127.0.0.1:0")
	const bucket = "plba_test_lowering_delays"
	js := jsFor(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	created := time.Now()
	_, err := lease.OpenKV(ctx, js, lease.KVConfig{Bucket: bucket, TTL: time.Second})
	require.NoError(t, err)
	time.Sleep(time.Until(created.Add(2 * time.Second))) // the bucket is older than every TTL below

	// takes applies ttl, opens the bucket with it and takes a lease: how
	// long after ApplyKV it is held. A lease held later than from
	// (a delay) must say from when in its Status meanwhile.
	takes := func(ttl time.Duration, holder string, delayed bool) time.Duration {
		t.Helper()
		cfg := lease.KVConfig{Bucket: bucket, TTL: ttl, Holder: holder}
		start := time.Now()
		require.NoError(t, lease.ApplyKV(ctx, js, cfg))
		require.NoError(t, lease.CheckKV(ctx, js, cfg))
		kv, err := lease.OpenKV(ctx, js, cfg)
		require.NoError(t, err)
		l := kv.Lease("nightly-report")
		type acquired struct {
			h   lease.Hold
			at  time.Time
			err error
		}
		got := make(chan acquired, 1)
		go func() {
			h, err := l.Acquire(ctx)
			got <- acquired{h, time.Now(), err}
		}()
		if delayed {
			require.Eventually(t, func() bool { return !l.Status().HeldFrom.IsZero() }, time.Second, time.Millisecond,
				"the lease says from when it is held")
			st := l.Status()
			require.False(t, st.Held)
			require.Equal(t, holder, st.Holder)
			t.Logf("held from %v after ApplyKV", st.HeldFrom.Sub(start))
		}
		r := <-got
		require.NoError(t, r.err)
		require.NoError(t, r.h.Release(ctx))
		require.Zero(t, l.Status().HeldFrom)
		return r.at.Sub(start)
	}

	took := takes(time.Second, "unchanged", false)
	t.Logf("unchanged TTL: held %v after ApplyKV", took)
	require.Less(t, took, 1500*time.Millisecond, "an unchanged TTL adds no delay")
	took = takes(2*time.Second, "raised", false)
	t.Logf("raised TTL: held %v after ApplyKV", took)
	require.Less(t, took, 1500*time.Millisecond, "a raised TTL adds no delay")

	took = takes(time.Second, "lowered", true)
	t.Logf("lowered TTL (2s -> 1s): held %v after ApplyKV", took)
	require.GreaterOrEqual(t, took, 2*time.Second, "held before the old TTL passed since the change")
	require.Less(t, took, 3*time.Second)

	took = takes(time.Second, "again", false)
	t.Logf("unchanged TTL after the lowering: held %v after ApplyKV", took)
	require.Less(t, took, 1500*time.Millisecond, "the change is over: no delay")
}

// TestApplyKVRefusesToLowerTheTTLOnAServerBefore2_10: a server before
// 2.10 keeps no stream metadata, so the change could not be marked:
// ApplyKV refuses to lower the TTL there and changes nothing; a raised
// TTL, which needs no mark, is applied. Runs on PLBA_TEST_NATS_URL when it
// names such a server.
func TestApplyKVRefusesToLowerTheTTLOnAServerBefore2_10(t *testing.T) {
	url := os.Getenv("PLBA_TEST_NATS_URL")
	if url == "" {
		t.Skip("set PLBA_TEST_NATS_URL to a server before 2.10")
	}
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	if !strings.HasPrefix(nc.ConnectedServerVersion(), "2.9.") && !strings.HasPrefix(nc.ConnectedServerVersion(), "2.8.") {
		t.Skipf("the server at PLBA_TEST_NATS_URL is %s", nc.ConnectedServerVersion())
	}
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	bucket := uniqueBucket(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = lease.OpenKV(ctx, js, lease.KVConfig{Bucket: bucket, TTL: 2 * time.Second})
	require.NoError(t, err)

	err = lease.ApplyKV(ctx, js, lease.KVConfig{Bucket: bucket, TTL: time.Second})
	var d *lease.BucketDiffers
	require.ErrorAs(t, err, &d)
	require.ErrorIs(t, d.Refused, lease.ErrServerTooOld)
	require.ErrorIs(t, err, lease.ErrConfig)
	require.NoError(t, lease.CheckKV(ctx, js, lease.KVConfig{Bucket: bucket, TTL: 2 * time.Second}), "unchanged")

	require.NoError(t, lease.ApplyKV(ctx, js, lease.KVConfig{Bucket: bucket, TTL: 3 * time.Second}))
	require.NoError(t, lease.CheckKV(ctx, js, lease.KVConfig{Bucket: bucket, TTL: 3 * time.Second}), "raised")
}

// A TTL a host's configuration would lower is cautioned against lowering
// by hand while hosts run (it leaves no mark); other differences are not.
func TestBucketDiffersCautionsAgainstLoweringByHand(t *testing.T) {
	lower := &lease.BucketDiffers{Bucket: "b", Setting: lease.SettingTTL, Want: time.Second, Have: 3 * time.Second}
	require.True(t, lower.Lowering())
	require.Contains(t, lower.Error(), "lowering the ttl by hand: with every host stopped")
	for _, d := range []*lease.BucketDiffers{
		{Bucket: "b", Setting: lease.SettingTTL, Want: 3 * time.Second, Have: time.Second},
		{Bucket: "b", Setting: lease.SettingReplicas, Want: 1, Have: 3},
	} {
		require.False(t, d.Lowering(), "%v", d)
		require.NotContains(t, d.Error(), "lowering")
	}
}

// TestKVContenderSaysTheBucketsTTLIsNotItsOwn: host-b contends for a
// lease host-a holds, and the bucket's TTL is raised under both (by hand):
// host-b's status says that the bucket's TTL is not its own, as host-a's
// does, though host-b takes nothing (its attempts find the lease held).
func TestKVContenderSaysTheBucketsTTLIsNotItsOwn(t *testing.T) {
	t.Parallel()
	const ttl = time.Second
	url := natsURL(t)
	bucket := uniqueBucket(t)
	a := openKVIn(t, url, bucket, "host-a", ttl)
	time.Sleep(ttl) // the bucket is the TTL old
	la := a.Lease("imap/INBOX")
	ha := acquire(t, la, 5*time.Second)
	defer func() { _ = ha.Release(context.Background()) }()
	b := openKVIn(t, url, bucket, "host-b", ttl)
	lb := b.Lease("imap/INBOX")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if h, err := lb.Acquire(ctx); err == nil {
			_ = h.Release(context.Background())
		}
	}()
	defer func() { cancel(); <-done }()
	require.Eventually(t, func() bool { return lb.Status().Holder == "host-a" }, 5*time.Second, 10*time.Millisecond)

	js := jsFor(t, url)
	kv, err := js.KeyValue(t.Context(), bucket)
	require.NoError(t, err)
	st, err := kv.Status(t.Context())
	require.NoError(t, err)
	cfg := st.(*jetstream.KeyValueBucketStatus).Config()
	cfg.TTL = 2 * ttl
	_, err = js.UpdateKeyValue(t.Context(), cfg)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(la.Status().LastError, "has ttl 2s") }, 5*time.Second, 10*time.Millisecond,
		"the holder's status: %+v", la.Status())
	require.Eventually(t, func() bool { return strings.Contains(lb.Status().LastError, "has ttl 2s") }, 5*time.Second, 10*time.Millisecond,
		"the contender's status: %+v", lb.Status())
	require.False(t, lb.Status().Held)
}
