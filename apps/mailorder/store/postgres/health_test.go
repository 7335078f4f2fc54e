package postgres_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/store/postgres"
	"github.com/plba/plba/internal/netfault"
	"github.com/plba/plba/platform/health"
)

// The store's readiness check (Ping, as mailorder registers it) on a
// database that freezes (the connection stays open, nothing comes back)
// and then goes away: the host is not ready within the check's timeout
// and an interval, each run ends at its timeout (no goroutine is left
// behind per run), it is ready again soon after the thaw, and a database
// that refuses connections is reported with the reason.
func TestStoreHealthOnAFrozenAndAGoneDatabase(t *testing.T) {
	t.Parallel()
	pgURL, schema := testSchema(t)
	u, err := url.Parse(pgURL)
	require.NoError(t, err)
	p := netfault.NewProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = p.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, postgres.Config{URL: viaProxy.String(), Schema: schema})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	const interval, timeout = 100 * time.Millisecond, 300 * time.Millisecond
	hr, err := health.NewRegistry(health.Options{}, nil, []health.Check{
		{Name: "mailorder/store", Func: s.Ping, Gating: true, Interval: interval, Timeout: timeout},
	})
	require.NoError(t, err)
	hr.Start()
	t.Cleanup(hr.Stop)
	waitReady := func(want bool, limit time.Duration, what string) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			if ok, _ := hr.Ready(); ok == want {
				return time.Since(start)
			}
			if time.Since(start) > limit {
				t.Fatalf("ready is not %v after %s (%s): %+v", want, limit, what, hr.Results())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitReady(true, 10*time.Second, "connected")

	p.Freeze()
	took := waitReady(false, interval+timeout+time.Second, "frozen")
	t.Logf("not ready %v after the freeze", took)
	// The check keeps running into its timeout while the database stays
	// frozen, and each run returns there: none is still hanging when the
	// next is due (the registry would say "its previous run has not
	// returned yet" and start no other).
	for range 3 {
		last := hr.Results()[0].CheckedAt
		require.Eventually(t, func() bool { return hr.Results()[0].CheckedAt.After(last) },
			10*time.Second, 10*time.Millisecond, "the check runs again while frozen")
		res := hr.Results()[0]
		require.False(t, res.Healthy)
		require.Contains(t, res.LastError, "deadline exceeded", "the reason says the database did not answer")
		require.Less(t, res.Latency, timeout+200*time.Millisecond, "the run ended at its timeout")
	}

	p.Thaw()
	took = waitReady(true, 5*time.Second, "thawed")
	t.Logf("ready %v after the thaw", took)

	p.Close() // the database is gone: connections are refused
	waitReady(false, interval+timeout+time.Second, "gone")
	require.Contains(t, hr.Results()[0].LastError, "postgres store: ping")
}
