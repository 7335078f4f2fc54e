package lease

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// heldCreate is a bucket whose creates reach the server only once the
// test lets them (a create in flight, its request sent): creating is
// signalled as one is held.
type heldCreate struct {
	jetstream.KeyValue
	creating, release chan struct{}
}

func (h *heldCreate) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	h.creating <- struct{}{}
	<-h.release
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return h.KeyValue.Create(cctx, key, value, opts...)
}

// TestKVTakeSeesALoweringBeforeItsCreate: host-b sends the create of a
// lease's key; another lease of its KV reads the bucket's status (a read
// started after the create was sent, answered before it reached the
// server); the bucket's TTL is then lowered from 2 s to 1 s (ApplyKV,
// marked), and the create reaches the server after the change. The hold
// counted on that shared read, which showed no mark: host-b held the
// lease at once, while a holder counting on the old TTL could still
// believe its hold. The take's read starts after its create is answered:
// it sees the mark, and holds once the old TTL has passed since the
// change.
func TestKVTakeSeesALoweringBeforeItsCreate(t *testing.T) {
	t.Parallel()
	const old, new = 2 * time.Second, time.Second
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(context.Background(), opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	const bucket = "plba_test_lowered_in_flight"
	openKVAt(t, srv.ClientURL(), bucket, "host-a", old)

	b := openKVAt(t, srv.ClientURL(), bucket, "host-b", old)
	// The bucket the TTL old: host-b need not wait for its age.
	require.Eventually(t, func() bool {
		st, err := b.kv.Status(t.Context())
		require.NoError(t, err)
		info := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
		return info.TimeStamp.Sub(info.Created) >= old
	}, 3*old, 50*time.Millisecond)
	hc := &heldCreate{KeyValue: b.kv, creating: make(chan struct{}, 1), release: make(chan struct{})}
	b.kv = hc
	ctx, cancel := context.WithTimeout(t.Context(), 5*old)
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
	select {
	case <-hc.creating:
	case <-ctx.Done():
		t.Fatal("no create")
	}
	// Another lease's read, after the create was sent.
	st, err := b.statusSince(ctx, time.Now())
	require.NoError(t, err)
	require.Equal(t, old, st.TTL())

	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	changed := time.Now() // the change comes after
	require.NoError(t, ApplyKV(ctx, js, KVConfig{Bucket: bucket, TTL: new}))
	close(hc.release)

	r := <-got
	require.NoError(t, r.err)
	took := time.Now()
	defer func() { _ = r.h.Release(context.Background()) }()
	t.Logf("held %v after the change: %+v", took.Sub(changed), l.Status())
	require.GreaterOrEqual(t, took.Sub(changed), old, "held before the old TTL passed since the change")
}
