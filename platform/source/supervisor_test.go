package source_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// flaky is a source that fails (cannot connect) until healed; then each
// Run emits one task and waits for its context. It records when each Run
// started.
type flaky struct {
	name   string
	healed atomic.Bool
	mu     sync.Mutex
	starts []time.Time
}

func (f *flaky) Name() string { return f.name }

func (f *flaky) Run(ctx context.Context, emit source.Emitter) error {
	f.mu.Lock()
	f.starts = append(f.starts, time.Now())
	f.mu.Unlock()
	if !f.healed.Load() {
		return errors.New("cannot connect")
	}
	if err := emit.Emit(ctx, &task.Task{Kind: "k"}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func (f *flaky) runs() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.starts...)
}

// probe serves reg's probes and answers path with its status code and body.
func probe(t *testing.T, hr *health.Registry, path string) (int, string) {
	t.Helper()
	mux := http.NewServeMux()
	hr.Mount(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return rec.Code, string(b)
}

// TestSupervisorNeverGivesUp: a source past the crash-loop limit is shown
// failed, in /healthz too, and keeps being restarted with capped back-off
// (30 restarts from 10ms capped at 20ms take well under a second; doubling
// without a cap would take days); /livez stays 200 and, not configured to
// gate it, /readyz too. When the source works again its component is back
// to running. Before, the supervisor gave up after the limit: 4 runs, for
// good.
func TestSupervisorNeverGivesUp(t *testing.T) {
	t.Parallel()
	src := &flaky{name: "mailbox"}
	var fatal atomic.Int64
	reg := lifecycle.NewRegistry(nil, func(string, error) { fatal.Add(1) })
	cfg := source.Config{RestartInitial: 10 * time.Millisecond, RestartMax: 20 * time.Millisecond, RestartJitter: -1,
		CrashLoopLimit: 3, CrashLoopWindow: time.Minute}
	col := &collector{}
	s, err := source.NewSupervisor(cfg, col, reg, nil, src)
	require.NoError(t, err)
	hr, err := health.NewRegistry(health.Options{}, reg, nil)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	defer stopSupervisor(t, s)

	require.Eventually(t, func() bool { return componentState(t, reg, "mailbox").State == lifecycle.Failed }, 10*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return len(src.runs()) >= 30 }, 15*time.Second, time.Millisecond,
		"a failed source is still restarted")
	st := componentState(t, reg, "mailbox")
	require.Equal(t, lifecycle.Failed, st.State, "failed while failing")
	require.Contains(t, st.LastError, "crash loop")
	require.Contains(t, st.LastError, "cannot connect")
	require.True(t, st.External)
	require.False(t, st.GatesReadiness)
	require.Zero(t, fatal.Load(), "sources default to StayDegraded")
	starts := src.runs()
	for i := 10; i < len(starts); i++ {
		require.Less(t, starts[i].Sub(starts[i-1]), 5*time.Second, "the delay is capped")
	}

	code, _ := probe(t, hr, "/livez")
	require.Equal(t, http.StatusOK, code, "a source never drives liveness")
	code, _ = probe(t, hr, "/readyz")
	require.Equal(t, http.StatusOK, code, "a source gates readiness only when configured to")
	code, body := probe(t, hr, "/healthz")
	require.Equal(t, http.StatusOK, code)
	var rep health.Report
	require.NoError(t, json.Unmarshal([]byte(body), &rep))
	require.Len(t, rep.Components, 1)
	require.Equal(t, lifecycle.Failed, rep.Components[0].State)
	srv, err := admin.NewServer(admin.Config{Listen: "127.0.0.1:0"}, nil, admin.StatusInfo{}, reg, hr, nil)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/v1/status", nil))
	var status admin.Status
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &status))
	require.True(t, status.Live)
	require.Len(t, status.Components, 1)
	require.Equal(t, lifecycle.Failed, status.Components[0].State)
	require.Contains(t, status.Components[0].LastError, "crash loop")

	src.healed.Store(true)
	require.Eventually(t, func() bool { return componentState(t, reg, "mailbox").State == lifecycle.Running }, 10*time.Second, time.Millisecond,
		"back to running once it works")
	require.Len(t, col.all(), 1)
	d := componentState(t, reg, "mailbox").Details.(source.Stats)
	require.GreaterOrEqual(t, d.Errors, int64(30))
	require.Equal(t, d.Errors, d.Restarts)
}

// TestSupervisorGatesReadinessWhenConfigured: a source named in
// sources.gate_readiness makes /readyz 503 while it is not running (and
// never /livez); an unknown name is a configuration problem naming the key
// and the known sources.
func TestSupervisorGatesReadinessWhenConfigured(t *testing.T) {
	t.Parallel()
	src := &flaky{name: "mailbox"}
	other := &funcSource{name: "steady", run: func(ctx context.Context, _ source.Emitter) error { <-ctx.Done(); return nil }}
	reg := lifecycle.NewRegistry(nil, nil)
	cfg := source.Config{RestartInitial: 10 * time.Millisecond, RestartMax: 20 * time.Millisecond,
		CrashLoopLimit: 2, CrashLoopWindow: time.Minute, GateReadiness: []string{"mailbox"}}
	s, err := source.NewSupervisor(cfg, &collector{}, reg, nil, src, other)
	require.NoError(t, err)
	hr, err := health.NewRegistry(health.Options{}, reg, nil)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	defer stopSupervisor(t, s)

	require.Eventually(t, func() bool { return componentState(t, reg, "mailbox").State == lifecycle.Failed }, 10*time.Second, time.Millisecond)
	require.True(t, componentState(t, reg, "mailbox").GatesReadiness)
	require.False(t, componentState(t, reg, "steady").GatesReadiness)
	code, body := probe(t, hr, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "source/mailbox is failed")
	code, _ = probe(t, hr, "/livez")
	require.Equal(t, http.StatusOK, code)

	src.healed.Store(true)
	require.Eventually(t, func() bool { c, _ := probe(t, hr, "/readyz"); return c == http.StatusOK }, 10*time.Second, time.Millisecond)

	_, err = source.NewSupervisor(source.Config{GateReadiness: []string{"steady", "mailbx"}}, &collector{}, nil, nil, other)
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	require.EqualError(t, err, `sources.gate_readiness[1]: no source "mailbx" (known: steady)`)
	_, err = source.NewSupervisor(source.Config{GateReadiness: []string{"steady", "steady"}}, &collector{}, nil, nil, other)
	require.ErrorContains(t, err, `gate_readiness[1]: source "steady" is already listed (gate_readiness[0])`)
}

// TestRecoveryResetsTheBackoff: once a source worked again, its next
// failure is restarted after the initial delay, not the grown one.
func TestRecoveryResetsTheBackoff(t *testing.T) {
	t.Parallel()
	var (
		runs     atomic.Int64
		healthy  atomic.Bool
		fail     = make(chan struct{}, 1)
		mu       sync.Mutex
		starts   []time.Time
		failedAt time.Time
	)
	src := &funcSource{name: "s", run: func(ctx context.Context, emit source.Emitter) error {
		runs.Add(1)
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		if !healthy.Load() {
			return errors.New("down")
		}
		if err := emit.Emit(ctx, &task.Task{Kind: "k"}); err != nil {
			return err
		}
		select {
		case <-fail:
			mu.Lock()
			failedAt = time.Now()
			mu.Unlock()
			return errors.New("down again")
		case <-ctx.Done():
			return nil
		}
	}}
	reg := lifecycle.NewRegistry(nil, nil)
	cfg := source.Config{RestartInitial: 10 * time.Millisecond, RestartMax: 10 * time.Second, RestartJitter: -1,
		CrashLoopLimit: 100, CrashLoopWindow: time.Minute}
	s, err := source.NewSupervisor(cfg, &collector{}, reg, nil, src)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	defer stopSupervisor(t, s)
	// 10, 20, 40, 80, 160, 320, 640ms: the 8th run follows a 640ms delay.
	require.Eventually(t, func() bool { return runs.Load() >= 7 }, 20*time.Second, time.Millisecond)
	healthy.Store(true)
	require.Eventually(t, func() bool { return s.Stats()[0].Emitted == 1 }, 20*time.Second, time.Millisecond)
	fail <- struct{}{}
	require.Eventually(t, func() bool { return s.Stats()[0].Emitted == 2 }, 20*time.Second, time.Millisecond)
	mu.Lock()
	gap := starts[len(starts)-1].Sub(failedAt)
	mu.Unlock()
	require.Less(t, gap, 500*time.Millisecond, "the delay after a recovery starts over (else at least 1.28s)")
}

// TestStopNamesTheSourcesStillRunning: a Stop whose ctx ends while a
// source's Run ignores its cancellation names that source (and not the
// one that stopped) in its error and in the registry's StopsUnderway.
// Before, it said only "sources still running".
func TestStopNamesTheSourcesStillRunning(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	stuck := &funcSource{name: "stuck", run: func(ctx context.Context, _ source.Emitter) error {
		<-release // ignores ctx
		return nil
	}}
	quick := &funcSource{name: "quick", run: func(ctx context.Context, _ source.Emitter) error {
		<-ctx.Done()
		return nil
	}}
	reg := lifecycle.NewRegistry(nil, nil)
	s, err := source.NewSupervisor(source.Config{}, &collector{}, reg, nil, stuck, quick)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = s.Stop(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "sources still running: stuck")
	require.NotContains(t, err.Error(), "quick")
	require.Equal(t, []string{"source/stuck"}, reg.StopsUnderway())
	close(release)
	stopSupervisor(t, s)
	require.Empty(t, reg.StopsUnderway())
}
