package lifecycle

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

func (r *recorder) hook(name string) (func(context.Context) error, func(context.Context) error) {
	return func(context.Context) error { r.add("start " + name); return nil },
		func(context.Context) error { r.add("stop " + name); return nil }
}

// Three components that depend on each other: backend <- pool <- source.
type backend struct{}
type pool struct{}
type sourceComp struct{}

func TestOrderFollowsDependenciesAndStopReverses(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	reg := NewRegistry(nil, nil)
	track := func(lc fx.Lifecycle, name string) {
		start, stop := rec.hook(name)
		_, err := reg.Track(lc, name, StopHost, start, stop)
		require.NoError(t, err)
	}
	app := fxtest.New(t,
		fx.Supply(reg),
		// Provided in the "wrong" order on purpose: fx orders by dependency.
		fx.Provide(func(lc fx.Lifecycle, _ *pool) *sourceComp { track(lc, "source"); return &sourceComp{} }),
		fx.Provide(func(lc fx.Lifecycle, _ *backend) *pool { track(lc, "pool"); return &pool{} }),
		fx.Provide(func(lc fx.Lifecycle) *backend { track(lc, "backend"); return &backend{} }),
		fx.Invoke(func(*sourceComp) {}),
	)
	app.RequireStart()
	for _, s := range reg.Snapshot() {
		require.Equal(t, Running, s.State, s.Name)
	}
	app.RequireStop()
	require.Equal(t, []string{"start backend", "start pool", "start source", "stop source", "stop pool", "stop backend"}, rec.log)
	for _, s := range reg.Snapshot() {
		require.Equal(t, Stopped, s.State, s.Name)
	}
}

func TestFailedStartRollsBackStartedComponents(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	reg := NewRegistry(nil, nil)
	app := fx.New(
		fx.NopLogger,
		fx.Invoke(func(lc fx.Lifecycle) {
			start, stop := rec.hook("a")
			_, err := reg.Track(lc, "a", StopHost, start, stop)
			require.NoError(t, err)
			_, err = reg.Track(lc, "b", StopHost, func(context.Context) error { return errors.New("port taken") }, nil)
			require.NoError(t, err)
		}),
	)
	err := app.Start(context.Background())
	require.ErrorContains(t, err, "b: start: port taken")
	require.Equal(t, []string{"start a", "stop a"}, rec.log, "a was rolled back")
	b, _ := reg.Get("b")
	require.Equal(t, Failed, b.State())
	require.Equal(t, "port taken", b.Status().LastError)
}

func TestStartTimeout(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(nil, nil)
	app := fx.New(fx.NopLogger, fx.StartTimeout(50*time.Millisecond),
		fx.Invoke(func(lc fx.Lifecycle) {
			_, err := reg.Track(lc, "slow", StopHost, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, nil)
			require.NoError(t, err)
		}))
	ctx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
	defer cancel()
	err := app.Start(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// fx reports only the deadline (and returns without waiting for the
	// hook); the registry names who was too slow once the hook gives up.
	c, _ := reg.Get("slow")
	require.Eventually(t, func() bool { return c.State() == Failed }, 5*time.Second, time.Millisecond)
	require.Contains(t, c.Status().LastError, "deadline exceeded")
}

func TestFailurePolicy(t *testing.T) {
	t.Parallel()
	var fatal []string
	reg := NewRegistry(map[string]Policy{"imap": StayDegraded}, func(name string, err error) {
		fatal = append(fatal, name+": "+err.Error())
	})
	imap := reg.MustRegister("imap", StopHost) // configuration overrides the default
	pool := reg.MustRegister("pool", StopHost)
	require.Equal(t, StayDegraded, imap.Status().Policy)

	imap.Fail(errors.New("auth failed"))
	require.Empty(t, fatal, "a degrade-policy component does not stop the host")
	pool.Fail(errors.New("backend gone"))
	pool.Fail(errors.New("again")) // already failed: not reported twice
	require.Equal(t, []string{"pool: backend gone"}, fatal)
	s, failed := reg.AnyFailed()
	require.True(t, failed)
	require.Equal(t, "imap", s.Name)
	// What stopped the host is the pool, as it failed then.
	s, failed = reg.FatalFailure()
	require.True(t, failed)
	require.Equal(t, "pool", s.Name)
	require.Equal(t, "backend gone", s.LastError)
}

func TestFatalShutsDownApp(t *testing.T) {
	t.Parallel()
	var reg *Registry
	app := fxtest.New(t, fx.Supply(DefaultConfig()), fx.Supply(zap.NewNop()), Module, fx.Populate(&reg))
	app.RequireStart()
	c := reg.MustRegister("worker", StopHost)
	c.Fail(errors.New("disk full"))
	select {
	case sig := <-app.Wait():
		require.Equal(t, ExitFailure, sig.ExitCode)
	case <-time.After(2 * time.Second):
		t.Fatal("host was not shut down")
	}
	app.RequireStop()
}

func TestDuplicateAndDetails(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(nil, nil)
	c := reg.MustRegister("x", StopHost)
	_, err := reg.Register("x", StopHost)
	require.ErrorIs(t, err, ErrDuplicateComponent)
	c.SetDetails(func() any { return map[string]int{"processed": 3} })
	c.Set(Degraded, errors.New("stalled"))
	c.Set(Running, nil)
	s := c.Status()
	require.Equal(t, Running, s.State)
	require.Equal(t, "stalled", s.LastError, "the last error is kept")
	require.Equal(t, map[string]int{"processed": 3}, s.Details)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, DefaultConfig().Validate())
	bad := Config{StartTimeout: -1, Policies: map[string]Policy{"x": "explode"}}
	err := bad.Validate()
	require.ErrorContains(t, err, "start_timeout: must be positive")
	require.ErrorContains(t, err, "stop_timeout: must be positive")
	require.ErrorContains(t, err, `policies.x: must be "stop" or "degrade"`)
}

// The probes read states only; a component's details are computed for
// status pages, not on every /livez and /readyz.
func TestProbesDoNotComputeDetails(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(nil, nil)
	c := reg.MustRegister("pool", StayDegraded)
	c.Set(Running, nil)
	var calls int
	c.SetDetails(func() any { calls++; return calls })
	_, failed := reg.AnyFailed()
	require.False(t, failed)
	_, running := reg.AllRunning()
	require.True(t, running)
	require.Zero(t, calls, "probes do not compute details")
	require.Equal(t, 1, reg.Snapshot()[0].Details)
}

// TestExternalComponents: an External component's failure is not a
// liveness failure; it blocks readiness only when registered to.
func TestExternalComponents(t *testing.T) {
	t.Parallel()
	r := NewRegistry(nil, nil)
	own := r.MustRegister("pool/a", StayDegraded)
	ext := r.MustRegister("source/a", StayDegraded, External(false))
	gate := r.MustRegister("source/b", StayDegraded, External(true))
	for _, c := range []*Component{own, ext, gate} {
		c.Set(Running, nil)
	}
	_, failed := r.LiveFailure()
	require.False(t, failed)
	_, ok := r.ReadyRunning()
	require.True(t, ok)

	ext.Fail(errors.New("down"))
	_, failed = r.LiveFailure()
	require.False(t, failed, "an external failure is not a liveness failure")
	_, ok = r.ReadyRunning()
	require.True(t, ok, "nor a readiness one unless it gates")
	s, failed := r.AnyFailed()
	require.True(t, failed, "it is failed all the same")
	require.Equal(t, "source/a", s.Name)
	require.True(t, ext.Status().External)
	require.False(t, ext.Status().GatesReadiness)

	gate.Set(Degraded, errors.New("restarting"))
	why, ok := r.ReadyRunning()
	require.False(t, ok)
	require.Equal(t, "source/b is degraded", why)

	own.Fail(errors.New("stalled"))
	s, failed = r.LiveFailure()
	require.True(t, failed)
	require.Equal(t, "pool/a", s.Name)
	require.True(t, own.Status().GatesReadiness)
}
