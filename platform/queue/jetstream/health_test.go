package jetstream_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/queue/jetstream"
)

// A frozen server (the connection stays up, nothing comes back) makes the
// host not ready within the check's timeout and an interval, the probes
// keep answering at once meanwhile, repeated probes start no goroutines,
// and the host is ready again soon after the network thaws.
func TestHealthOnAFrozenServer(t *testing.T) {
	t.Parallel()
	_, proxy := proxiedServer(t)
	b := openBackend(t, jetstream.Config{URLs: []string{"nats://" + proxy.Addr()}, AckWait: 2 * time.Second})

	const interval, timeout = 200 * time.Millisecond, 300 * time.Millisecond
	hc := b.HealthCheck()
	hc.Interval, hc.Timeout = interval, timeout
	hr, err := health.NewRegistry(health.Options{}, nil, []health.Check{hc})
	require.NoError(t, err)
	mux := http.NewServeMux()
	hr.Mount(mux)
	hr.Start()
	t.Cleanup(hr.Stop)
	probe := func() (int, time.Duration) {
		start := time.Now()
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, time.Since(start)
	}
	waitProbe := func(want int, limit time.Duration, what string) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			code, took := probe()
			require.Less(t, took, 50*time.Millisecond, "a probe waits for no check")
			if code == want {
				return time.Since(start)
			}
			if time.Since(start) > limit {
				t.Fatalf("/readyz still %d after %s: want %d (%s)", code, limit, want, what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitProbe(http.StatusOK, 10*time.Second, "connected")

	proxy.Freeze()
	took := waitProbe(http.StatusServiceUnavailable, interval+timeout+time.Second, "frozen")
	t.Logf("not ready %v after the freeze", took)
	res := hr.Results()[0]
	require.False(t, res.Healthy)
	require.Contains(t, res.LastError, "timed out", "the reason says the server did not answer")

	// Many probes while the server stays frozen: the count of goroutines
	// in the health registry and the backend's check does not grow with
	// them (the process's count moves with the package's parallel tests:
	// a CI run saw 162 against 158).
	before := healthGoroutines()
	for range 200 {
		code, _ := probe()
		require.Equal(t, http.StatusServiceUnavailable, code)
	}
	require.LessOrEqual(t, healthGoroutines(), before+5, "probes started goroutines")

	proxy.Thaw()
	took = waitProbe(http.StatusOK, 10*time.Second, "thawed")
	t.Logf("ready %v after the thaw", took)
	require.NoError(t, b.Check(context.Background()))
}

// healthGoroutines counts the process's goroutines running the health
// registry's code or a backend's check.
func healthGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "plba/platform/health.") || strings.Contains(g, "jetstream.(*Backend).Check") {
			count++
		}
	}
	return count
}
