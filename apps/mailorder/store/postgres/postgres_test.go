package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/plba/plba/apps/mailorder/store/postgres"
	"github.com/plba/plba/apps/mailorder/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testSchema returns the server URL and a fresh schema name that is dropped
// when the test ends; it skips the test when PLBA_TEST_POSTGRES_URL is
// unset.
func testSchema(t testing.TB) (url, schema string) {
	t.Helper()
	url = os.Getenv("PLBA_TEST_POSTGRES_URL")
	if url == "" {
		t.Skip("PLBA_TEST_POSTGRES_URL not set")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema = "mailorder_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return url, schema
}

func open(t testing.TB, url, schema string) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, postgres.Config{URL: url, Schema: schema})
	require.NoError(t, err)
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Store {
		url, schema := testSchema(t)
		return open(t, url, schema)
	})
}

func TestReopenKeepsDataAndMigratesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, schema := testSchema(t)
	s := open(t, url, schema)
	o := storetest.MakeOrder(1, 2)
	_, err := s.SaveOrder(ctx, o)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	// Two stores opening the same schema at once migrate once.
	errs := make(chan error, 2)
	stores := make(chan *postgres.Store, 2)
	for range 2 {
		go func() {
			s, err := postgres.Open(ctx, postgres.Config{URL: url, Schema: schema})
			errs <- err
			stores <- s
		}()
	}
	for range 2 {
		require.NoError(t, <-errs)
		s := <-stores
		t.Cleanup(func() { _ = s.Close() })
		got, err := s.Get(ctx, o.ID)
		require.NoError(t, err)
		storetest.RequireEqualOrders(t, o, got)
		created, err := s.SaveOrder(ctx, o)
		require.NoError(t, err)
		require.False(t, created)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []postgres.Config{
		{},
		{URL: "postgres://u:hunter2@host/db", MaxConns: -1},
		{URL: "::not a url::"},
		{URL: "postgres://localhost/db", IdleInTransactionTimeout: -time.Second},
	} {
		err := c.WithDefaults().Validate()
		require.Error(t, err, "%+v", c)
		require.NotContains(t, err.Error(), "hunter2", "the password is not echoed")
	}
	require.NoError(t, postgres.Config{URL: "postgres://localhost/db"}.WithDefaults().Validate())
	require.Equal(t, postgres.DefaultIdleInTransactionTimeout, postgres.Config{}.WithDefaults().IdleInTransactionTimeout)
	_, err := postgres.Open(context.Background(), postgres.Config{})
	require.ErrorContains(t, err, "url: required")
}

func TestUnreachableServerFailsOpen(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, postgres.Config{URL: "postgres://postgres@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"})
	require.Error(t, err)
}
