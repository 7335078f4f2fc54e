package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/plba/plba/apps/mailorder/store/sqlite"
	"github.com/plba/plba/apps/mailorder/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	require.NoError(t, err)
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return open(t, filepath.Join(t.TempDir(), "orders.db"))
	})
}

func TestReopenKeepsDataAndMigratesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "orders.db")
	s := open(t, path)
	o := storetest.MakeOrder(1, 2)
	_, err := s.SaveOrder(ctx, o)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s = open(t, path)
	defer s.Close()
	got, err := s.Get(ctx, o.ID)
	require.NoError(t, err)
	storetest.RequireEqualOrders(t, o, got)
	created, err := s.SaveOrder(ctx, o)
	require.NoError(t, err)
	require.False(t, created)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []sqlite.Config{
		{},
		{Path: "a?b"},
		{Path: "x.db", Synchronous: "OFF"},
		{Path: "x.db", BusyTimeout: -1},
	} {
		require.Error(t, c.WithDefaults().Validate(), "%+v", c)
	}
	require.NoError(t, sqlite.Config{Path: "x.db"}.WithDefaults().Validate())
	_, err := sqlite.Open(context.Background(), sqlite.Config{})
	require.ErrorContains(t, err, "path: required")
}

// One process per database: a second Open of the same file fails at once
// with ErrInUse, naming the file and the holder's pid; after Close the
// file can be opened again.
func TestSecondOpenIsRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "orders.db")
	s := open(t, path)
	_, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	require.ErrorIs(t, err, sqlite.ErrInUse)
	require.ErrorContains(t, err, path)
	require.ErrorContains(t, err, fmt.Sprintf("pid %d", os.Getpid()))
	require.NoError(t, s.Close())
	s = open(t, path)
	require.NoError(t, s.Close())
}

// An in-memory database (path ":memory:") is one database: what the writer
// stores, the reads see. Before, every connection of the read pool opened
// its own empty database: Count, List and Get failed with "no such table"
// while Ping, and so the health check, passed.
func TestInMemoryDatabaseReadsWhatItStores(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, ":memory:")
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	o := storetest.MakeOrder(1, 2)
	created, err := s.SaveOrder(ctx, o)
	require.NoError(t, err)
	require.True(t, created)
	n, err := s.Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, err := s.Get(ctx, o.ID)
	require.NoError(t, err)
	storetest.RequireEqualOrders(t, o, got)
	list, err := s.List(ctx, 10)
	require.NoError(t, err)
	require.Len(t, list, 1)
}
