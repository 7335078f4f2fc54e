package lease_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/plba/plba/internal/natstest"
	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

func TestMain(m *testing.M) {
	if url := os.Getenv("PLBA_TEST_NATS_URL"); url != "" {
		natstest.KeepStreamDir(url)
	}
	goleak.VerifyTestMain(m,
		// nats.go's and nats-server's background goroutines stop shortly
		// after Close/Shutdown returns.
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go.(*Conn).flusher"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).Start.func1"),
	)
}

// natsURL is PLBA_TEST_NATS_URL, or a server the test starts on a free
// loopback port with its store in a temp dir.
func natsURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("PLBA_TEST_NATS_URL"); u != "" {
		return u
	}
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(context.Background(), opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv.ClientURL()
}

// host is one host's connection and lease store.
type host struct {
	nc *nats.Conn
	kv *lease.KV
}

// newHost connects as holder to url and opens the bucket (unique to the
// test) with ttl.
func newHost(t *testing.T, url, bucket, holder string, ttl time.Duration) *host {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name(holder), nats.MaxReconnects(0))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := lease.OpenKV(context.Background(), js, lease.KVConfig{Bucket: bucket, TTL: ttl, Holder: holder})
	require.NoError(t, err)
	return &host{nc: nc, kv: kv}
}

func uniqueBucket(t *testing.T) string {
	t.Helper()
	b := fmt.Sprintf("plba_test_leases_%d", time.Now().UnixNano())
	url := natsURL(t)
	t.Cleanup(func() {
		nc, err := nats.Connect(url)
		if err != nil {
			return
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		_ = js.DeleteKeyValue(context.Background(), b)
	})
	return b
}

func acquire(t *testing.T, l lease.Lease, within time.Duration) lease.Hold {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	h, err := l.Acquire(ctx)
	require.NoError(t, err, "acquire %s within %v", l.Name(), within)
	return h
}

// The holder's host dies (its connection closes, nothing is released):
// its hold is lost before the lease expires, and the other host takes over
// within the TTL and a third of it.
func TestKVHandOverWhenTheHolderStopsRenewing(t *testing.T) {
	url := natsURL(t)
	bucket := uniqueBucket(t)
	const ttl = 3 * time.Second
	a := newHost(t, url, bucket, "host-a", ttl)
	b := newHost(t, url, bucket, "host-b", ttl)
	hostA := a.kv.Lease("imap/INBOX")
	ha := acquire(t, hostA, ttl+10*time.Second) // a new bucket: held a TTL after it was created
	stA := hostA.Status()
	require.True(t, stA.Held)
	require.Equal(t, "host-a", stA.Holder)

	lb := b.kv.Lease("imap/INBOX")
	type acquired struct {
		h   lease.Hold
		at  time.Time
		err error
	}
	got := make(chan acquired, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		h, err := lb.Acquire(ctx)
		got <- acquired{h: h, at: time.Now(), err: err}
	}()
	// B waits behind A, seeing A as the holder.
	deadline := time.Now().Add(10 * time.Second)
	for lb.Status().Holder != "host-a" {
		require.True(t, time.Now().Before(deadline), "B never saw A hold the lease")
		time.Sleep(50 * time.Millisecond)
	}
	// A keeps renewing while it lives: B does not get in for two TTLs.
	select {
	case r := <-got:
		t.Fatalf("B acquired while A renewed: %+v", r)
	case <-time.After(2 * ttl):
	}
	revA := hostA.Status().Revision
	require.Greater(t, revA, stA.Revision, "A renewed (new revisions)")

	// A's host dies.
	killed := time.Now()
	a.nc.Close()
	var lostAt time.Time
	select {
	case <-ha.Lost():
		lostAt = time.Now()
	case <-time.After(2 * ttl):
		t.Fatal("A's hold not lost")
	}
	var r acquired
	select {
	case r = <-got:
	case <-time.After(3 * ttl):
		t.Fatal("B never took over")
	}
	require.NoError(t, r.err)
	defer func() { _ = r.h.Release(context.Background()) }()
	require.True(t, lostAt.Before(r.at), "A stopped (%v) before B held (%v)", lostAt, r.at)
	handOver := r.at.Sub(killed)
	t.Logf("hand-over after the holder died: %v (ttl %v); A lost its hold %v after", handOver, ttl, lostAt.Sub(killed))
	require.Less(t, handOver, ttl+ttl/3+2*time.Second, "within the TTL and a poll (plus slack for a loaded machine)")
	stB := lb.Status()
	require.True(t, stB.Held)
	require.Equal(t, "host-b", stB.Holder)
	require.Greater(t, stB.Revision, revA, "B's revision follows A's")
	require.EqualValues(t, 1, stB.HandOvers)
}

// Release hands the lease over at the other host's next attempt.
func TestKVReleaseHandsOver(t *testing.T) {
	url := natsURL(t)
	bucket := uniqueBucket(t)
	const ttl = 3 * time.Second
	a := newHost(t, url, bucket, "host-a", ttl).kv.Lease("nightly report")
	b := newHost(t, url, bucket, "host-b", ttl).kv.Lease("nightly report")
	ha := acquire(t, a, ttl+10*time.Second)
	rev := a.Status().Revision
	got := make(chan lease.Hold, 1)
	go func() {
		h, err := b.Acquire(context.Background())
		if err == nil {
			got <- h
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for b.Status().Holder != "host-a" {
		require.True(t, time.Now().Before(deadline), "B never saw A hold the lease")
		time.Sleep(20 * time.Millisecond)
	}
	released := time.Now()
	require.NoError(t, ha.Release(context.Background()))
	require.False(t, a.Status().Held)
	select {
	case hb := <-got:
		t.Logf("hand-over after release: %v", time.Since(released))
		require.Greater(t, b.Status().Revision, rev)
		require.NoError(t, hb.Release(context.Background()))
	case <-time.After(ttl):
		t.Fatal("B did not take the released lease before it would have expired")
	}
	select {
	case <-ha.Lost():
		t.Fatal("a released hold is not lost")
	default:
	}
}

// Three hosts contend for one lease many times, each holding it for a
// moment and releasing it, one of them dying once: at no time do two
// hold it, and each hold's revision is above every earlier one.
func TestKVNeverTwoHolders(t *testing.T) {
	url := natsURL(t)
	bucket := uniqueBucket(t)
	const ttl = 2 * time.Second
	var (
		mu      sync.Mutex
		holder  string
		lastRev uint64
		holds   int
		fails   []string
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 3 {
		name := fmt.Sprintf("host-%d", i)
		h := newHost(t, url, bucket, name, ttl)
		l := h.kv.Lease("mailbox")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; ; round++ {
				hold, err := l.Acquire(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				rev := l.Status().Revision
				if holder != "" {
					fails = append(fails, fmt.Sprintf("%s acquired while %s held", name, holder))
				}
				if rev <= lastRev {
					fails = append(fails, fmt.Sprintf("%s acquired at revision %d after %d", name, rev, lastRev))
				}
				holder, lastRev = name, rev
				holds++
				enough := holds >= 9
				mu.Unlock()
				if enough {
					cancel()
				}
				dies := name == "host-0" && round == 1
				select {
				case <-time.After(300 * time.Millisecond):
				case <-hold.Lost():
				case <-ctx.Done():
				}
				if dies {
					// The host dies holding the lease: its connection
					// closes, the hold is lost before the key expires.
					h.nc.Close()
					<-hold.Lost()
				}
				mu.Lock()
				holder = ""
				mu.Unlock()
				_ = hold.Release(context.Background())
				if dies {
					return
				}
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, fails)
	require.GreaterOrEqual(t, holds, 9, "enough hand-overs in the time")
}

func TestKVRefusesABucketWithAnotherTTL(t *testing.T) {
	url := natsURL(t)
	bucket := uniqueBucket(t)
	newHost(t, url, bucket, "a", 3*time.Second)
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = lease.OpenKV(context.Background(), js, lease.KVConfig{Bucket: bucket, TTL: 5 * time.Second})
	require.ErrorIs(t, err, lease.ErrConfig)
	require.ErrorContains(t, err, "has ttl 3s, configured 5s")
}

// A bucket made with other replicas than the configuration's is refused,
// as one with another TTL is, rather than used as it is: on a cluster, a
// host asking for three replicas bound to a bucket of one, which the loss
// of its server would take away. The same for the marks' bucket.
func TestKVRefusesABucketWithOtherReplicas(t *testing.T) {
	if os.Getenv("PLBA_TEST_CLUSTER") == "" {
		t.Skip("set PLBA_TEST_CLUSTER=1 to run a three-node cluster")
	}
	srvs := natstest.StartCluster(t, 3)
	nc, err := nats.Connect(srvs[0].ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	_, err = lease.OpenKV(ctx, js, lease.KVConfig{Bucket: "leases", TTL: 3 * time.Second, Replicas: 1})
	require.NoError(t, err)
	_, err = lease.OpenKV(ctx, js, lease.KVConfig{Bucket: "leases", TTL: 3 * time.Second, Replicas: 3})
	require.ErrorIs(t, err, lease.ErrConfig)
	require.ErrorContains(t, err, "has replicas 1, configured 3")

	// So is the schedules' marks bucket (it was bound as it was).
	_, err = lease.OpenMarks(ctx, js, "marks", 1)
	require.NoError(t, err)
	_, err = lease.OpenMarks(ctx, js, "marks", 3)
	require.ErrorIs(t, err, lease.ErrConfig)
	require.ErrorContains(t, err, "has replicas 1, configured 3")
	_, err = lease.OpenMarks(ctx, js, "marks", 1)
	require.NoError(t, err, "the same replicas")
}
