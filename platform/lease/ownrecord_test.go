package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
)

// A host cut off from NATS for a moment loses its hold; once it is back
// it finds the lease's key still holding its own record (the key outlives
// the hold by the margin, and a renewal held up by the cut may still land)
// and takes the lease again when that expires. Nobody else held it: that
// is no hand-over.
func TestRetakingItsOwnLeaseIsNoHandOver(t *testing.T) {
	url := natsURL(t)
	bucket := uniqueBucket(t)
	const ttl = 2 * time.Second
	p := netfault.NewProxy(t, hostPort(t, url))
	a := newHost(t, "nats://"+p.Addr(), bucket, "host-a", ttl)
	l := a.kv.Lease("imap/INBOX")
	h := acquire(t, l, ttl+10*time.Second)
	time.Sleep(ttl / 2) // a renewal or two

	p.Freeze()
	select {
	case <-h.Lost():
	case <-time.After(2 * ttl):
		t.Fatal("the hold was not lost while cut off")
	}
	p.Thaw()
	require.NoError(t, h.Release(context.Background()))

	h2 := acquire(t, l, 4*ttl)
	defer func() { _ = h2.Release(context.Background()) }()
	st := l.Status()
	require.True(t, st.Held)
	require.Equal(t, "host-a", st.Holder)
	require.Zero(t, st.HandOvers, "the host took back its own lease: no other holder had it")
}
