package lease_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
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
	ha := acquire(t, a.kv.Lease("imap/INBOX"), 10*time.Second)

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
