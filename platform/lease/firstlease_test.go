package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lease"
)

// TestKVFirstLeaseFromANewBucketComesATTLAfterIt: the first lease from a
// bucket (a new deployment's first start) is held a TTL after the bucket
// was created. Meanwhile the host that took it keeps its key (the other
// host sees it as the holder) and its Status says from when it holds it;
// once the bucket is old enough, a lease passes at once.
func TestKVFirstLeaseFromANewBucketComesATTLAfterIt(t *testing.T) {
	t.Parallel()
	url := natsURL(t)
	bucket := uniqueBucket(t)
	const ttl = 2 * time.Second
	opened := time.Now()
	a := newHost(t, url, bucket, "host-a", ttl).kv.Lease("nightly report")
	b := newHost(t, url, bucket, "host-b", ttl).kv.Lease("nightly report")
	type acquired struct {
		h   lease.Hold
		at  time.Time
		err error
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := func(l lease.Lease) <-chan acquired {
		ch := make(chan acquired, 1)
		go func() {
			h, err := l.Acquire(ctx)
			ch <- acquired{h, time.Now(), err}
		}()
		return ch
	}
	gotA := got(a)
	require.Eventually(t, func() bool { return !a.Status().HeldFrom.IsZero() }, ttl, time.Millisecond,
		"host-a took the key and waits for its bucket to be the TTL old")
	st := a.Status()
	require.Equal(t, "host-a", st.Holder)
	require.False(t, st.Held)
	require.WithinDuration(t, opened.Add(ttl), st.HeldFrom, ttl/2)
	gotB := got(b)
	require.Eventually(t, func() bool { return b.Status().Holder == "host-a" }, ttl, time.Millisecond,
		"host-b sees host-a hold the key")

	var ra acquired
	select {
	case ra = <-gotA:
	case <-time.After(ttl + 10*time.Second):
		t.Fatal("host-a never held the lease")
	}
	require.NoError(t, ra.err)
	t.Logf("first lease from a new bucket: %v after opening it (ttl %v)", ra.at.Sub(opened), ttl)
	require.GreaterOrEqual(t, ra.at.Sub(opened), ttl, "held before the bucket was the TTL old")
	st = a.Status()
	require.True(t, st.Held)
	require.Equal(t, "host-a", st.Holder)
	require.Zero(t, st.HeldFrom)

	released := time.Now()
	require.NoError(t, ra.h.Release(context.Background()))
	var rb acquired
	select {
	case rb = <-gotB:
	case <-time.After(ttl):
		t.Fatal("host-b did not take the released lease from the old bucket before it would have expired")
	}
	require.NoError(t, rb.err)
	t.Logf("hand-over after release on the old bucket: %v", rb.at.Sub(released))
	require.True(t, b.Status().Held)
	require.NoError(t, rb.h.Release(context.Background()))
}

// TestKVAcquireEndingWhileItsBucketIsYoungFreesTheKey: an Acquire whose
// context ends while it waits for its bucket to be the TTL old deletes the
// key it created, so that it is free for another host, and says it does
// not hold the lease.
func TestKVAcquireEndingWhileItsBucketIsYoungFreesTheKey(t *testing.T) {
	t.Parallel()
	url := natsURL(t)
	bucket := uniqueBucket(t)
	const ttl = 5 * time.Second
	h := newHost(t, url, bucket, "host-a", ttl)
	l := h.kv.Lease("nightly-report")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		hold, err := l.Acquire(ctx)
		if hold != nil {
			_ = hold.Release(context.Background())
		}
		done <- err
	}()
	require.Eventually(t, func() bool { return !l.Status().HeldFrom.IsZero() }, ttl, time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(ttl / 2):
		t.Fatal("Acquire did not end with its context")
	}
	st := l.Status()
	require.False(t, st.Held)
	require.Zero(t, st.HeldFrom)
	js, err := jetstream.New(h.nc)
	require.NoError(t, err)
	kv, err := js.KeyValue(context.Background(), bucket)
	require.NoError(t, err)
	_, err = kv.Get(context.Background(), "lease.nightly-report")
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound, "the key is free")
}
