package mailorder

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/store/storetest"
)

// TestStartedStoreOpensOnStart: the graph's store answers ErrStoreNotOpen
// until its component starts, works on the opened store in between, and
// after stop; building it touches nothing on disk.
func TestStartedStoreOpensOnStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "orders.db")
	s := &startedStore{cfg: StoreConfig{Driver: DriverSQLite, SQLite: SQLiteConfig{Path: path}}}

	o := storetest.MakeOrder(1, 2)
	_, err := s.SaveOrder(ctx, o)
	require.ErrorIs(t, err, ErrStoreNotOpen)
	_, err = s.Count(ctx)
	require.ErrorIs(t, err, ErrStoreNotOpen)
	_, err = s.List(ctx, 1)
	require.ErrorIs(t, err, ErrStoreNotOpen)
	require.ErrorIs(t, s.Ping(ctx), ErrStoreNotOpen)
	require.NoFileExists(t, path)
	require.NoError(t, s.Close(), "closing a store never opened")

	require.NoError(t, s.open(ctx))
	require.FileExists(t, path, "open creates the directory and the database")
	created, err := s.SaveOrder(ctx, o)
	require.NoError(t, err)
	require.True(t, created)
	n, err := s.Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, err := s.List(ctx, 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	storetest.RequireEqualOrders(t, o, got[0])
	require.NoError(t, s.Ping(ctx))

	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Ping(ctx), ErrStoreNotOpen)
	require.NoError(t, s.Close(), "Close is idempotent")
}

// TestStartedStoreOpenFails: a store that cannot open fails the start
// with the reason and stays closed.
func TestStartedStoreOpenFails(t *testing.T) {
	s := &startedStore{cfg: StoreConfig{Driver: "nosuch"}}
	err := s.open(context.Background())
	require.ErrorContains(t, err, `unknown store driver "nosuch"`)
	require.ErrorIs(t, s.Ping(context.Background()), ErrStoreNotOpen)
}
