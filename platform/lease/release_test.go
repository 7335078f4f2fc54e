package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
)

// A host stopping while cut off from NATS releases its lease within the
// context it gives Release, even while a renewal is waiting for a reply
// that cannot come: that wait lasts until the hold would be lost (three
// quarters of the TTL: minutes with a long TTL), and a host's stop would
// spend its whole budget there, leaving its pools undrained.
func TestReleaseWhileCutOffHonoursItsContext(t *testing.T) {
	url := natsURL(t)
	bucket := uniqueBucket(t)
	const ttl = 8 * time.Second // renewals every 2 s, lost 6 s after the last
	p := netfault.NewProxy(t, hostPort(t, url))
	a := newHost(t, "nats://"+p.Addr(), bucket, "host-a", ttl)
	h := acquire(t, a.kv.Lease("imap/INBOX"), ttl+10*time.Second)
	p.Freeze()
	time.Sleep(ttl/4 + ttl/8) // the first renewal is under way, and stuck
	select {
	case <-h.Lost():
		t.Fatal("lost before three quarters of the TTL")
	default:
	}

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.Release(ctx)
	took := time.Since(start)
	t.Logf("release while cut off: %v after %v", err, took)
	require.Error(t, err, "the key could not be deleted: it expires")
	require.Less(t, took, 2*time.Second, "Release waited past its context")
	p.Thaw()
}

// A renewal under way when Release is called is waited for while
// Release's context lasts: Release then deletes the key at the renewed
// revision and another host takes the lease at once (cutting the renewal
// short would leave the key at a revision Release does not know, to
// expire after the TTL).
func TestReleaseWaitsForARenewalUnderWay(t *testing.T) {
	url := natsURL(t)
	bucket := uniqueBucket(t)
	const ttl = 8 * time.Second
	p := netfault.NewProxy(t, hostPort(t, url))
	a := newHost(t, "nats://"+p.Addr(), bucket, "host-a", ttl)
	b := newHost(t, url, bucket, "host-b", ttl)
	h := acquire(t, a.kv.Lease("imap/INBOX"), ttl+10*time.Second)
	p.Freeze()
	time.Sleep(ttl/4 + ttl/8) // the first renewal is under way
	p.Thaw()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, h.Release(ctx), "the renewal went through, then the delete")

	start := time.Now()
	hb := acquire(t, b.kv.Lease("imap/INBOX"), 10*time.Second)
	defer func() { _ = hb.Release(context.Background()) }()
	require.Less(t, time.Since(start), time.Second, "the released lease is free at once")
}
