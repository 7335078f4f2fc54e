package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
)

// OpenTestBackend is openTestBackend for the package's external tests.
var OpenTestBackend = openTestBackend

// LeaseOne is leaseOne for the package's external tests.
var LeaseOne = leaseOne

// leaseOne leases one delivery of q (waiting up to 20 s for it), with a
// lease of 5 s.
func leaseOne(t *testing.T, b *Backend, q string) *queue.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ds, err := b.Lease(ctx, q, 1, 5*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	return ds[0]
}

// openTestBackend starts a backend from cfg and closes it when tb ends.
func openTestBackend(tb testing.TB, cfg Config) *Backend {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, Params{Config: cfg})
	require.NoError(tb, err)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// WorkSubject is the subject of queueName's work stream on b, for
// external tests that publish foreign messages there.
func WorkSubject(tb testing.TB, b *Backend, queueName string) string {
	tb.Helper()
	qn, err := b.names.forQueue(queueName)
	require.NoError(tb, err)
	return qn.subject
}
