package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/plba/plba/platform/lifecycle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ok(context.Context) error { return nil }

func failing(context.Context) error { return errors.New("mail server unreachable") }

func hanging(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// newServer runs checks once and mounts the probes. A check without its
// own timeout has a generous one: a passing check passes however slowly
// a loaded machine runs it; a check meant to time out sets its own.
func newServer(t *testing.T, comps *lifecycle.Registry, checks ...Check) (*Registry, http.Handler) {
	t.Helper()
	r, err := NewRegistry(Options{DefaultTimeout: 30 * time.Second}, comps, checks)
	require.NoError(t, err)
	r.RunAll(context.Background())
	mux := http.NewServeMux()
	r.Mount(mux)
	return r, mux
}

func TestAggregation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name             string
		checks           []Check
		wantLive, wantRd int
	}{
		{"all healthy", []Check{{Name: "a", Func: ok, Gating: true}}, 200, 200},
		{"failing non-gating check keeps ready", []Check{{Name: "a", Func: ok, Gating: true}, {Name: "b", Func: failing}}, 200, 200},
		{"failing gating check makes not ready", []Check{{Name: "a", Func: failing, Gating: true}}, 200, 503},
		{"hanging gating check times out", []Check{{Name: "slow", Func: hanging, Gating: true, Timeout: 50 * time.Millisecond}}, 200, 503},
		{"checks never drive liveness", []Check{{Name: "a", Func: failing, Gating: true}, {Name: "b", Func: hanging, Gating: true, Timeout: 50 * time.Millisecond}}, 200, 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			comps := lifecycle.NewRegistry(nil, nil)
			comps.MustRegister("x", lifecycle.StayDegraded).Set(lifecycle.Running, nil)
			_, h := newServer(t, comps, tc.checks...)
			live, _ := get(t, h, "/livez")
			ready, body := get(t, h, "/readyz")
			require.Equal(t, tc.wantLive, live)
			require.Equal(t, tc.wantRd, ready, body)
		})
	}
}

// A check that ignores its context still cannot make the probe slow: its
// run ends at its timeout while the check hangs on.
func TestHangingCheckReportsTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	returned := make(chan struct{})
	defer func() { close(release); <-returned }()
	r, err := NewRegistry(Options{}, nil, []Check{{Name: "slow", Gating: true, Timeout: 50 * time.Millisecond,
		Func: func(context.Context) error {
			defer close(returned)
			<-release
			return nil
		}}})
	require.NoError(t, err)
	ran := make(chan struct{})
	go func() { // owned: waited for below, within a deadline
		defer close(ran)
		r.RunAll(context.Background())
	}()
	select {
	case <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("the run waited for the check that ignores its context")
	}
	h := http.NewServeMux()
	r.Mount(h)
	res := r.Results()[0]
	require.False(t, res.Healthy)
	require.Contains(t, res.LastError, "timed out")
	code, _ := get(t, h, "/readyz")
	require.Equal(t, 503, code)
}

func TestComponentsDriveProbes(t *testing.T) {
	t.Parallel()
	comps := lifecycle.NewRegistry(nil, nil)
	c := comps.MustRegister("pool/default", lifecycle.StayDegraded)
	_, h := newServer(t, comps)

	code, body := get(t, h, "/readyz")
	require.Equal(t, 503, code, "a starting component is not ready")
	require.Contains(t, body, "pool/default is starting")

	c.Set(lifecycle.Running, nil)
	code, _ = get(t, h, "/readyz")
	require.Equal(t, 200, code)

	c.Set(lifecycle.Degraded, errors.New("stalled"))
	code, _ = get(t, h, "/readyz")
	require.Equal(t, 503, code)
	code, _ = get(t, h, "/livez")
	require.Equal(t, 200, code, "degraded is still alive")

	c.Fail(errors.New("boom"))
	code, body = get(t, h, "/livez")
	require.Equal(t, 503, code)
	require.Contains(t, body, "boom")
}

// TestExternalComponentsNeverDriveLiveness: a component that follows an
// outside dependency (a source) never makes /livez fail, failed or not; it
// makes /readyz fail only when registered to gate readiness; /healthz
// shows it failed either way.
func TestExternalComponentsNeverDriveLiveness(t *testing.T) {
	t.Parallel()
	comps := lifecycle.NewRegistry(nil, nil)
	free := comps.MustRegister("source/free", lifecycle.StayDegraded, lifecycle.External(false))
	gating := comps.MustRegister("source/gating", lifecycle.StayDegraded, lifecycle.External(true))
	free.Set(lifecycle.Running, nil)
	gating.Set(lifecycle.Running, nil)
	_, h := newServer(t, comps)
	code, _ := get(t, h, "/readyz")
	require.Equal(t, 200, code)

	free.Fail(errors.New("mail server down"))
	code, _ = get(t, h, "/livez")
	require.Equal(t, 200, code, "an outside dependency does not drive liveness")
	code, _ = get(t, h, "/readyz")
	require.Equal(t, 200, code, "a source that does not gate readiness")
	code, body := get(t, h, "/healthz")
	require.Equal(t, 200, code)
	require.Contains(t, body, `"state": "failed"`)
	require.Contains(t, body, "mail server down")

	gating.Fail(errors.New("disk full"))
	code, _ = get(t, h, "/livez")
	require.Equal(t, 200, code)
	code, body = get(t, h, "/readyz")
	require.Equal(t, 503, code)
	require.Contains(t, body, "source/gating is failed")

	gating.Set(lifecycle.Running, nil)
	code, _ = get(t, h, "/readyz")
	require.Equal(t, 200, code, "back to ready when it recovers")
}

func TestShuttingDownTurnsReadinessOff(t *testing.T) {
	t.Parallel()
	r, h := newServer(t, nil, Check{Name: "a", Func: ok, Gating: true})
	code, _ := get(t, h, "/readyz")
	require.Equal(t, 200, code)
	r.SetShuttingDown()
	code, body := get(t, h, "/readyz")
	require.Equal(t, 503, code)
	require.Contains(t, body, "shutting down")
	code, _ = get(t, h, "/livez")
	require.Equal(t, 200, code)
}

// While the host's start has not returned, it is not ready, on /readyz
// and in /healthz's report alike, even with every check passing; live.
func TestStartingHoldsReadinessOff(t *testing.T) {
	t.Parallel()
	r, h := newServer(t, nil, Check{Name: "a", Func: ok, Gating: true})
	r.SetStarting(true)
	code, body := get(t, h, "/readyz")
	require.Equal(t, 503, code)
	require.Contains(t, body, "starting")
	rep := r.Report()
	require.False(t, rep.Ready)
	require.Equal(t, "starting", rep.Reason)
	code, _ = get(t, h, "/livez")
	require.Equal(t, 200, code)
	r.SetStarting(false)
	code, _ = get(t, h, "/readyz")
	require.Equal(t, 200, code)
	require.True(t, r.Report().Ready)
}

func TestHealthzJSON(t *testing.T) {
	t.Parallel()
	comps := lifecycle.NewRegistry(nil, nil)
	comps.MustRegister("admin", lifecycle.StopHost).Set(lifecycle.Running, nil)
	_, h := newServer(t, comps, Check{Name: "store", Func: ok, Gating: true}, Check{Name: "mail", Func: failing})
	code, body := get(t, h, "/healthz")
	require.Equal(t, 200, code)
	var rep Report
	require.NoError(t, json.Unmarshal([]byte(body), &rep))
	require.True(t, rep.Live)
	require.True(t, rep.Ready)
	require.Len(t, rep.Checks, 2)
	require.Equal(t, "mail", rep.Checks[0].Name)
	require.False(t, rep.Checks[0].Healthy)
	require.Equal(t, "mail server unreachable", rep.Checks[0].LastError)
	require.True(t, rep.Checks[1].Healthy)
	require.Len(t, rep.Components, 1)
	require.Equal(t, lifecycle.Running, rep.Components[0].State)
}

func TestBackgroundLoopServesCachedResult(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var healthy atomic.Bool
	r, err := NewRegistry(Options{}, nil, []Check{{
		Name: "flip", Gating: true, Interval: time.Hour, // a failing check retries sooner
		Func: func(context.Context) error {
			calls.Add(1)
			if healthy.Load() {
				return nil
			}
			return errors.New("down")
		},
	}})
	require.NoError(t, err)
	r.Start()
	defer r.Stop()
	require.Eventually(t, func() bool { ok, _ := r.Ready(); return !ok && calls.Load() > 0 }, 10*time.Second, 5*time.Millisecond)
	healthy.Store(true)
	require.Eventually(t, func() bool { ok, _ := r.Ready(); return ok }, 30*time.Second, 5*time.Millisecond)
	before := calls.Load()
	for range 100 {
		r.Ready() // probes do not run checks
	}
	require.Equal(t, before, calls.Load(), "healthy, the check runs on its one-hour interval: the probes ran none")
}

func TestDuplicateCheck(t *testing.T) {
	t.Parallel()
	_, err := NewRegistry(Options{}, nil, []Check{{Name: "a", Func: ok}, {Name: "a", Func: ok}})
	require.ErrorIs(t, err, ErrDuplicateCheck)
}

// A failing check is retried well before its interval, so a dependency
// that comes up just after start makes the host ready at once; a passing
// one runs on its interval.
func TestFailingCheckRetriesSoon(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	up := time.Now().Add(150 * time.Millisecond)
	r, err := NewRegistry(Options{}, nil, []Check{{
		Name: "late", Gating: true, Interval: time.Hour,
		Func: func(context.Context) error {
			calls.Add(1)
			if time.Now().Before(up) {
				return errors.New("connecting")
			}
			return nil
		},
	}})
	require.NoError(t, err)
	r.Start()
	defer r.Stop()
	require.Eventually(t, func() bool { ok, _ := r.Ready(); return ok }, 5*time.Second, 5*time.Millisecond,
		"ready long before the one-hour interval")
	n := calls.Load()
	require.GreaterOrEqual(t, n, int32(2))
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, n, calls.Load(), "healthy: back to its interval")
}

// A check that stays down backs off after the start-up window instead of
// running every few milliseconds forever.
func TestFailingCheckBacksOffAfterStartup(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	r, err := NewRegistry(Options{}, nil, []Check{{
		Name: "down", Gating: true, Interval: time.Hour,
		Func: func(context.Context) error { calls.Add(1); return errors.New("down") },
	}})
	require.NoError(t, err)
	r.Start()
	defer r.Stop()
	// Half a second past the window (its loop may have started late on a
	// loaded machine), then two seconds: backing off from 5ms, doubling,
	// it runs a few times (at most 9 from the window's end); every 5ms it
	// would run about 400 times.
	time.Sleep(startupWindow + 500*time.Millisecond)
	atWindow := calls.Load()
	require.Greater(t, atWindow, int32(20), "retried often while starting")
	time.Sleep(2 * time.Second)
	require.Less(t, calls.Load()-atWindow, int32(20), "then backs off")
}

// The back-off of a check that stays down is capped at its interval; it
// must not keep doubling until the duration overflows (negative, then
// zero: the check would then run in a tight loop).
func TestFailingCheckBackoffDoesNotOverflow(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	r, err := NewRegistry(Options{}, nil, []Check{{
		Name: "down", Interval: 20 * time.Millisecond,
		Func: func(context.Context) error { calls.Add(1); return errors.New("down") },
	}})
	require.NoError(t, err)
	r.Start()
	defer r.Stop()
	// Start-up window, then more than 60 failures at the 20ms interval:
	// past the point where 5ms doubled every failure overflows.
	time.Sleep(startupWindow + 2500*time.Millisecond)
	before, since := calls.Load(), time.Now()
	time.Sleep(500 * time.Millisecond)
	runs, took := calls.Load()-before, time.Since(since) // took: the sleep may end late
	require.LessOrEqual(t, runs, int64(took/(20*time.Millisecond))+5,
		"at most one run per 20ms interval (%d in %s); an overflowed back-off runs thousands", runs, took)
}

// A check that ignores its context is not started again while its last
// run hangs: one goroutine at most, and the result says why it fails.
func TestHangingCheckIsNotStackedUp(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	var runs atomic.Int32
	r, err := NewRegistry(Options{}, nil, []Check{{Name: "stuck", Timeout: 10 * time.Millisecond,
		Func: func(context.Context) error { runs.Add(1); <-release; return nil }}})
	require.NoError(t, err)
	for range 5 {
		r.RunAll(context.Background())
	}
	require.Equal(t, int32(1), runs.Load(), "started once while it hangs")
	res := r.Results()[0]
	require.False(t, res.Healthy)
	require.Contains(t, res.LastError, "previous run has not returned yet")
}

// A check that panics neither crashes the host nor passes: it fails with
// the panic as its reason, in /readyz and /healthz, and keeps being run.
func TestPanickingCheckFailsWithTheReason(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	r, err := NewRegistry(Options{}, nil, []Check{{Name: "boom", Gating: true, Interval: 10 * time.Millisecond,
		Func: func(context.Context) error { runs.Add(1); panic("nil map in the check") }}})
	require.NoError(t, err)
	mux := http.NewServeMux()
	r.Mount(mux)
	r.Start()
	defer r.Stop()
	require.Eventually(t, func() bool { return runs.Load() >= 3 }, 5*time.Second, 5*time.Millisecond, "run again after a panic")
	code, body := get(t, mux, "/readyz")
	require.Equal(t, 503, code)
	require.Contains(t, body, "check boom: check panicked: nil map in the check")
	code, body = get(t, mux, "/healthz")
	require.Equal(t, 503, code)
	var rep Report
	require.NoError(t, json.Unmarshal([]byte(body), &rep))
	require.False(t, rep.Checks[0].Healthy)
	require.Equal(t, "check panicked: nil map in the check", rep.Checks[0].LastError)
	code, _ = get(t, mux, "/livez")
	require.Equal(t, 200, code, "a check never drives liveness")
}

// /healthz is one snapshot: its ready and reason agree with the checks
// it lists, even while a check changes between runs.
func TestReportIsOneSnapshot(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	r, err := NewRegistry(Options{}, nil, []Check{{Name: "flapping", Gating: true, Interval: time.Microsecond,
		Func: func(context.Context) error {
			if n.Add(1)%2 == 0 {
				return errors.New("down")
			}
			return nil
		}}})
	require.NoError(t, err)
	r.Start()
	defer r.Stop()
	require.Eventually(t, func() bool { return n.Load() > 10 }, 5*time.Second, time.Millisecond)
	for i := range 20000 {
		rep := r.Report()
		c := rep.Checks[0]
		require.Equal(t, c.Healthy, rep.Ready, "report %d: ready %v, reason %q, check %+v", i, rep.Ready, rep.Reason, c)
		if !rep.Ready {
			require.Equal(t, "check flapping: "+c.LastError, rep.Reason, "report %d", i)
		}
	}
}

// The same for components: /healthz's live, ready and reason agree with
// the component states it lists, while a component changes state.
func TestReportComponentsAreOneSnapshot(t *testing.T) {
	t.Parallel()
	comps := lifecycle.NewRegistry(nil, nil)
	c := comps.MustRegister("pool/flapping", lifecycle.StayDegraded)
	c.Set(lifecycle.Running, nil)
	r, err := NewRegistry(Options{}, comps, nil)
	require.NoError(t, err)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // owned: stopped and waited for below
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				c.Set(lifecycle.Degraded, errors.New("stalled"))
			} else {
				c.Set(lifecycle.Running, nil)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for i := range 20000 {
		rep := r.Report()
		running := rep.Components[0].State == lifecycle.Running
		require.Equal(t, running, rep.Ready, "report %d: ready %v, reason %q, component %+v", i, rep.Ready, rep.Reason, rep.Components[0])
	}
}

// /healthz is live state, as the probes: it is not to be stored.
func TestHealthzIsNotStored(t *testing.T) {
	t.Parallel()
	_, h := newServer(t, nil, Check{Name: "c", Func: ok})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
}

// A check that returns a moment after its timeout (a driver closing its
// connection) is run again by the next run, which waits for it: its
// reason is its own, not "previous run has not returned yet".
func TestLateReturningCheckRunsAgain(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	// It returns 10ms after its timeout; the next run waits for it within
	// its own timeout, generous for a loaded machine.
	r, err := NewRegistry(Options{}, nil, []Check{{Name: "late", Timeout: 500 * time.Millisecond,
		Func: func(ctx context.Context) error {
			runs.Add(1)
			<-ctx.Done()
			time.Sleep(10 * time.Millisecond)
			return ctx.Err()
		}}})
	require.NoError(t, err)
	for range 3 {
		r.RunAll(context.Background())
		res := r.Results()[0]
		require.False(t, res.Healthy)
		require.Contains(t, res.LastError, "deadline exceeded")
	}
	require.Equal(t, int32(3), runs.Load(), "each run ran the check")
}
