package postgres_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/store/postgres"
)

// A max_conns far beyond what any server serves was accepted, and Open
// sized its pool for it: 1<<40 panicked (makechan: size out of range)
// and took the host down with a stack trace. An
// idle_in_transaction_timeout over PostgreSQL's 32-bit millisecond count
// was accepted, and the server refused every connection of the store.
// Both are configuration problems now, at their keys.
func TestOutOfRangeSettingsAreProblems(t *testing.T) {
	t.Parallel()
	url := "postgres://u:pw@127.0.0.1:1/db?sslmode=disable"
	for _, tc := range []struct {
		cfg  postgres.Config
		want string
	}{
		{postgres.Config{URL: url, MaxConns: 1 << 40}, "max_conns: must be between 1 and 1000"},
		{postgres.Config{URL: url, MaxConns: 1001}, "max_conns: must be between 1 and 1000"},
		{postgres.Config{URL: url, IdleInTransactionTimeout: 1000 * time.Hour}, "idle_in_transaction_timeout: must be between 1ms and 596h31m23.647s"},
	} {
		var err error
		require.NotPanics(t, func() { _, err = postgres.Open(t.Context(), tc.cfg) })
		require.ErrorContains(t, err, tc.want)
	}
	require.NoError(t, postgres.Config{URL: url, MaxConns: 1000, IdleInTransactionTimeout: postgres.MaxIdleInTransactionTimeout}.WithDefaults().Validate())
}
