package postgres_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/store/postgres"
	"github.com/plba/plba/apps/mailorder/store/storetest"
	"github.com/plba/plba/internal/netfault"
)

// TestHostFrozenMidTransactionDoesNotBlockTheOrder: host A stores an order
// and freezes (cut off, powered down) inside the transaction, after its
// order row went in and before its lines: to PostgreSQL its session is
// idle in a transaction that holds the order's unique key, and nothing
// tells it the host is gone for hours (TCP keepalive). The redelivery on
// host B must store the order soon; before, its insert waited on A's key
// until its context ended, every attempt, until the mail was
// dead-lettered without its order ever being stored.
func TestHostFrozenMidTransactionDoesNotBlockTheOrder(t *testing.T) {
	t.Parallel()
	pgURL, schema := testSchema(t)
	u, err := url.Parse(pgURL)
	require.NoError(t, err)
	p := netfault.NewProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = p.Addr()

	b := open(t, pgURL, schema) // migrates
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := postgres.Open(ctx, postgres.Config{URL: viaProxy.String(), Schema: schema, IdleInTransactionTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })

	o := storetest.MakeOrder(7, 3)
	frozen := p.FreezeOn("INSERT INTO order_lines")
	aDone := make(chan error, 1)
	actx, acancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer acancel()
	go func() {
		_, err := a.SaveOrder(actx, o)
		aDone <- err
	}()
	select {
	case <-frozen:
	case err := <-aDone:
		t.Fatalf("host A's save ended before it froze: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("host A never reached its lines")
	}

	// The redelivery on host B, within the task's lease.
	bctx, bcancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer bcancel()
	start := time.Now()
	created, err := b.SaveOrder(bctx, o)
	require.NoError(t, err, "host B stores the order a frozen host left half-written (after %v)", time.Since(start))
	require.True(t, created, "nothing of A's transaction was committed")
	got, err := b.Get(context.Background(), o.ID)
	require.NoError(t, err)
	storetest.RequireEqualOrders(t, o, got)
	pending, err := b.PendingConfirmations(context.Background(), 10)
	require.NoError(t, err)
	require.Len(t, pending, 1)

	acancel()
	require.Error(t, <-aDone, "host A's save did not complete")
}
