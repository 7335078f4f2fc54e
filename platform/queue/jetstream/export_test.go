package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// OpenTestBackend is openTestBackend for the package's external tests.
var OpenTestBackend = openTestBackend

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
