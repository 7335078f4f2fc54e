package lease

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// statusFails is a bucket whose Status fails while fail is set (the
// server's JetStream API overloaded, say), while its keys are read and
// written as usual; while cut is set, its updates fail too (the host cut
// off from the server).
type statusFails struct {
	jetstream.KeyValue
	fail, cut atomic.Bool
}

func (s *statusFails) Status(ctx context.Context) (jetstream.KeyValueStatus, error) {
	if s.fail.Load() {
		return nil, errors.New("status: no answer")
	}
	return s.KeyValue.Status(ctx)
}

func (s *statusFails) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if s.cut.Load() {
		return 0, errors.New("update: no answer")
	}
	return s.KeyValue.Update(ctx, key, value, rev)
}

// openKVAt connects to url and opens bucket with ttl as holder.
func openKVAt(t *testing.T, url, bucket, holder string, ttl time.Duration) *KV {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name(holder))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	k, err := OpenKV(t.Context(), js, KVConfig{Bucket: bucket, TTL: ttl, Holder: holder})
	require.NoError(t, err)
	return k
}

// TestKVHolderWhoseStatusFailsDoesNotOverlap: host-a holds a lease with a
// TTL of 4 s, renewing every second; its reads of the bucket's status
// fail from then on, while its renewals go through. A host that owns the
// server lowers the bucket's TTL to 2 s (ApplyKV). Once the old TTL has
// passed since the change, host-a is cut off just after a renewal, and
// host-b (configured with 2 s) contends. host-a never learnt the new TTL:
// counting on the old one, it believed its hold for 3 s after that
// renewal, while its key expired after 2 s and host-b took the lease.
// Now a renewal whose look at the bucket failed does not extend the
// hold: host-a lets go before the mark of the change runs out.
func TestKVHolderWhoseStatusFailsDoesNotOverlap(t *testing.T) {
	t.Parallel()
	const old, new = 4 * time.Second, 2 * time.Second
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(context.Background(), opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	const bucket = "plba_test_status_fails"

	a := openKVAt(t, srv.ClientURL(), bucket, "host-a", old)
	sf := &statusFails{KeyValue: a.kv}
	a.kv = sf
	time.Sleep(old) // the bucket is the TTL old: no wait for the first lease
	la := a.Lease("imap/INBOX")
	actx, acancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer acancel()
	ha, err := la.Acquire(actx)
	require.NoError(t, err)
	defer func() { _ = ha.Release(context.Background()) }()

	sf.fail.Store(true)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, ApplyKV(t.Context(), js, KVConfig{Bucket: bucket, TTL: new}))
	changed := time.Now()
	b := openKVAt(t, srv.ClientURL(), bucket, "host-b", new)
	time.Sleep(time.Until(changed.Add(old)))

	select {
	case <-ha.Lost():
		st := la.Status()
		t.Logf("host-a let go: %+v", st)
		require.Contains(t, st.LastError, "renewed, but not extended", "host-a says why it let go")
		require.Contains(t, st.LastError, "status: no answer")
	default:
		// Cut off just after a renewal.
		rev := la.Status().Revision
		require.Eventually(t, func() bool { return la.Status().Revision > rev }, old, time.Millisecond, "host-a renews")
		sf.cut.Store(true)
		t.Logf("host-a cut off %v after the change, holding: %+v", time.Since(changed), la.Status())
	}

	bctx, bcancel := context.WithTimeout(t.Context(), 2*old)
	defer bcancel()
	hb, err := b.Lease("imap/INBOX").Acquire(bctx)
	require.NoError(t, err, "host-b takes the lease (host-a: %+v)", la.Status())
	took := time.Now()
	defer func() { _ = hb.Release(context.Background()) }()
	select {
	case <-ha.Lost():
	default:
		t.Fatalf("host-b took the lease %v after the change while host-a still held it (%+v)", took.Sub(changed), la.Status())
	}
	t.Logf("host-a: %+v; host-b took the lease %v after the change", la.Status(), took.Sub(changed))
}

// agelessStatus is a bucket whose status does not say when it was
// created (the age unknown), and that counts its status reads.
type agelessStatus struct {
	jetstream.KeyValue
	calls atomic.Int64
}

func (s *agelessStatus) Status(ctx context.Context) (jetstream.KeyValueStatus, error) {
	s.calls.Add(1)
	st, err := s.KeyValue.Status(ctx)
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok && bs.StreamInfo() != nil {
		bs.StreamInfo().Created = time.Time{}
	}
	return st, err
}

// TestKVLeaseAfterALoweringWaitsWhenItsAgeIsUnknown: a host configured
// with a TTL of 1 s takes a lease from a bucket whose TTL was just
// lowered from 4 s (ApplyKV), and the status it reads after it created
// the key does not give the bucket's age. It took the bucket to be new,
// waiting its own TTL (1 s), and held the lease long before the old TTL
// had passed since the change, while a holder counting on the old TTL
// could still believe its hold. Now it waits at least the old TTL that
// status shows marked. The attempt reads the bucket's status once: it
// read it twice (once for the TTL, once for the age and the lowering).
func TestKVLeaseAfterALoweringWaitsWhenItsAgeIsUnknown(t *testing.T) {
	t.Parallel()
	const old, new = 4 * time.Second, time.Second
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(context.Background(), opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	const bucket = "plba_test_lowered_unknown"

	openKVAt(t, srv.ClientURL(), bucket, "host-a", old)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, ApplyKV(t.Context(), js, KVConfig{Bucket: bucket, TTL: new}))
	changed := time.Now()

	b := openKVAt(t, srv.ClientURL(), bucket, "host-b", new)
	sa := &agelessStatus{KeyValue: b.kv}
	b.kv = sa
	ctx, cancel := context.WithTimeout(t.Context(), 3*old)
	defer cancel()
	l := b.Lease("imap/INBOX")
	type result struct {
		h   Hold
		err error
	}
	got := make(chan result, 1)
	go func() {
		h, err := l.Acquire(ctx)
		got <- result{h, err}
	}()
	// Waiting to hold it: the attempt is done with the bucket's status
	// (its first renewal, a quarter of the TTL after, reads it again).
	require.Eventually(t, func() bool { return !l.Status().HeldFrom.IsZero() }, new/8, time.Millisecond, "waits: %+v", l.Status())
	require.Equal(t, int64(1), sa.calls.Load(), "status reads of the attempt")
	r := <-got
	require.NoError(t, r.err)
	took := time.Now()
	defer func() { _ = r.h.Release(context.Background()) }()
	t.Logf("held %v after the change: %+v", took.Sub(changed), l.Status())
	require.GreaterOrEqual(t, took.Sub(changed), old, "held before the old TTL passed since the change")
}

// TestKVTakeWhoseStatusFailsLetsGo: a host creates a lease's key, and
// its look at the bucket's TTL after fails: the bucket's TTL may be
// shorter than the host's, which the hold would count on. It does not
// hold the lease, and deletes the key at once, so that another host need
// not wait for it to expire.
func TestKVTakeWhoseStatusFailsLetsGo(t *testing.T) {
	t.Parallel()
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(context.Background(), opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	a := openKVAt(t, srv.ClientURL(), "plba_test_take_status_fails", "host-a", time.Second)
	sf := &statusFails{KeyValue: a.kv}
	sf.fail.Store(true)
	a.kv = sf
	l := a.Lease("imap/INBOX")
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err = l.Acquire(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "not held")
	require.Contains(t, l.Status().LastError, "created, but let go")
	require.Contains(t, l.Status().LastError, "status: no answer")
	require.False(t, l.Status().Held)
	_, err = sf.KeyValue.Get(t.Context(), keyFor("lease", "imap/INBOX"))
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound, "the key is deleted")
}

// letGoFails is a bucket whose status reads fail and whose deletes fail
// while told so, and that records the revision of its last create.
type letGoFails struct {
	jetstream.KeyValue
	statusFail, deleteFail atomic.Bool
	created                atomic.Uint64
}

func (s *letGoFails) Status(ctx context.Context) (jetstream.KeyValueStatus, error) {
	if s.statusFail.Load() {
		return nil, errors.New("status: no answer")
	}
	return s.KeyValue.Status(ctx)
}

func (s *letGoFails) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	rev, err := s.KeyValue.Create(ctx, key, value, opts...)
	if err == nil {
		s.created.Store(rev)
	}
	return rev, err
}

func (s *letGoFails) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	if s.deleteFail.Load() {
		return errors.New("delete: no answer")
	}
	return s.KeyValue.Delete(ctx, key, opts...)
}

// TestKVLetGoWhoseDeleteFailsShowsUntilGone: a host let a key it created
// go (the bucket's TTL unreadable after) and its delete failed. The
// attempts after, which find that key, say so in the lease's Status until
// it is gone, and delete it again. Before, the next attempt cleared the
// error: Status showed this host's own record, not held, and no error,
// until the key expired.
func TestKVLetGoWhoseDeleteFailsShowsUntilGone(t *testing.T) {
	t.Parallel()
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(context.Background(), opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	const ttl = 3 * time.Second // attempts every second; the key outlives a few of them
	a := openKVAt(t, srv.ClientURL(), "plba_test_letgo_delete_fails", "host-a", ttl)
	lf := &letGoFails{KeyValue: a.kv}
	lf.statusFail.Store(true)
	lf.deleteFail.Store(true)
	a.kv = lf
	l := a.Lease("imap/INBOX")
	ctx, cancel := context.WithTimeout(t.Context(), 4*ttl)
	defer cancel()
	type result struct {
		h   Hold
		err error
	}
	got := make(chan result, 1)
	go func() {
		h, err := l.Acquire(ctx)
		got <- result{h, err}
	}()
	// The first attempt let the key go; an attempt after found it.
	require.Eventually(t, func() bool { r := lf.created.Load(); return r != 0 && l.Status().Revision == r }, ttl, time.Millisecond)
	st := l.Status()
	require.False(t, st.Held)
	require.Contains(t, st.LastError, "is not deleted")
	require.Contains(t, st.LastError, "delete: no answer")
	rev := lf.created.Load()

	// The delete works again: the next attempt deletes the key, and the
	// one after creates it anew and takes the lease.
	lf.deleteFail.Store(false)
	lf.statusFail.Store(false)
	r := <-got
	require.NoError(t, r.err)
	defer func() { _ = r.h.Release(context.Background()) }()
	st = l.Status()
	require.True(t, st.Held || !st.HeldFrom.IsZero(), "%+v", st)
	require.Greater(t, lf.created.Load(), rev, "created again")
	require.NotContains(t, st.LastError, "is not deleted")
}
