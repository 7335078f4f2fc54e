package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// local is a config listening on a free loopback port.
func local() admin.Config {
	c := admin.DefaultConfig()
	c.Listen = "127.0.0.1:0"
	return c
}

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, admin.DefaultConfig().Validate())
	require.NoError(t, local().Validate())
	for _, c := range []struct {
		cfg  admin.Config
		want string
	}{
		{admin.Config{Listen: "8080"}, "listen"},
		{admin.Config{Listen: "127.0.0.1:http"}, "listen: port"},
		{admin.Config{Listen: "127.0.0.1:70000"}, "listen: port"},
		{admin.Config{Listen: ":0", ReadHeaderTimeout: -time.Second}, "read_header_timeout"},
		{admin.Config{Listen: ":0", ReadTimeout: -time.Second}, "read_timeout: must not be negative (got -1s)"},
		{admin.Config{Listen: ":0", WriteTimeout: -time.Second}, "write_timeout"},
		{admin.Config{Listen: ":0", IdleTimeout: -time.Second}, "idle_timeout"},
		{admin.Config{Listen: ":0", ShutdownTimeout: -time.Second}, "shutdown_timeout"},
	} {
		err := c.cfg.Validate()
		require.Error(t, err, "%+v", c.cfg)
		require.Contains(t, err.Error(), c.want)
	}
}

func TestStatusJSON(t *testing.T) {
	t.Parallel()
	comps := lifecycle.NewRegistry(nil, nil)
	c := comps.MustRegister("queue/memory", lifecycle.StopHost)
	c.Set(lifecycle.Running, nil)
	hr, err := health.NewRegistry(health.Options{}, comps, nil)
	require.NoError(t, err)
	started := time.Now().Add(-time.Minute)
	info := admin.StatusInfo{Version: "1.2.3", Commit: "abc123", ConfigDigest: "sha256:feed", Started: started}
	s, err := admin.NewServer(local(), nil, info, comps, hr, nil)
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	code, body := get(t, srv.URL+"/admin/v1/status")
	require.Equal(t, http.StatusOK, code)
	var st admin.Status
	require.NoError(t, json.Unmarshal([]byte(body), &st), body)
	require.Equal(t, "1.2.3", st.Version)
	require.Equal(t, "abc123", st.Commit)
	require.Equal(t, "sha256:feed", st.ConfigDigest)
	require.True(t, st.Started.Equal(started))
	up, err := time.ParseDuration(st.Uptime)
	require.NoError(t, err)
	require.GreaterOrEqual(t, up, time.Minute)
	require.True(t, st.Live)
	require.True(t, st.Ready)
	require.Len(t, st.Components, 1)
	require.Equal(t, "queue/memory", st.Components[0].Name)
	require.Equal(t, lifecycle.Running, st.Components[0].State)

	// A failed component makes the host not live (and not ready).
	c.Fail(errors.New("disk gone"))
	_, body = get(t, srv.URL+"/admin/v1/status")
	st = admin.Status{}
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	require.False(t, st.Live)
	require.False(t, st.Ready)
	require.Equal(t, lifecycle.Failed, st.Components[0].State)
	require.Equal(t, "disk gone", st.Components[0].LastError)
}

func TestHealthEndpointsMounted(t *testing.T) {
	t.Parallel()
	comps := lifecycle.NewRegistry(nil, nil)
	comps.MustRegister("pool/default", lifecycle.StopHost).Set(lifecycle.Running, nil)
	// A gating check that has not run yet counts as unhealthy: not ready.
	check := health.Check{Name: "db", Gating: true, Func: func(context.Context) error { return nil }}
	hr, err := health.NewRegistry(health.Options{}, comps, []health.Check{check})
	require.NoError(t, err)
	s, err := admin.NewServer(local(), nil, admin.StatusInfo{}, comps, hr, nil)
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	code, _ := get(t, srv.URL+"/livez")
	require.Equal(t, http.StatusOK, code)
	code, body := get(t, srv.URL+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	code, body = get(t, srv.URL+"/healthz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	var rep health.Report
	require.NoError(t, json.Unmarshal([]byte(body), &rep), body)
	require.True(t, rep.Live)
	require.False(t, rep.Ready)
	require.Len(t, rep.Checks, 1)
	require.Equal(t, "db", rep.Checks[0].Name)

	// Once the check ran healthy, the host is ready.
	hr.Start()
	defer hr.Stop()
	require.Eventually(t, func() bool {
		code, _ := get(t, srv.URL+"/readyz")
		return code == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond)
	code, _ = get(t, srv.URL+"/healthz")
	require.Equal(t, http.StatusOK, code)
}

func TestStatusWithoutRegistries(t *testing.T) {
	t.Parallel()
	s, err := admin.NewServer(local(), nil, admin.StatusInfo{Version: "dev"}, nil, nil, nil)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/v1/status", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var st admin.Status
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
	require.Equal(t, "dev", st.Version)
	require.True(t, st.Live)
	require.Empty(t, st.Components)
}

func TestConflictingRoutesFail(t *testing.T) {
	t.Parallel()
	h := http.NotFoundHandler()
	_, err := admin.NewServer(local(), nil, admin.StatusInfo{}, nil, nil, []admin.Route{
		{Pattern: "GET /admin/v1/queues", Handler: h},
		{Pattern: "GET /admin/v1/queues", Handler: h},
	})
	require.Error(t, err)
	require.Contains(t, err.Error(), `route "GET /admin/v1/queues"`)
}

// TestModuleServesContributedRoutes runs admin.Module in an fx app with a
// route contributed through the "admin.routes" group and the log level
// from the graph, over a real loopback listener.
func TestModuleServesContributedRoutes(t *testing.T) {
	t.Parallel()
	level := zap.NewAtomicLevelAt(zapcore.InfoLevel)
	core, logs := observer.New(zapcore.DebugLevel)
	var s *admin.Server
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(local(), admin.StatusInfo{Version: "v9"}, zap.New(core), lifecycle.NewRegistry(nil, nil), level),
		health.Module,
		admin.Module,
		fx.Provide(admin.AsRoute(func() admin.Route {
			return admin.Route{Pattern: "GET /admin/v1/hello/{name}", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				admin.WriteJSON(w, http.StatusOK, map[string]string{"hello": r.PathValue("name")})
			})}
		})),
		fx.Populate(&s),
	)
	app.RequireStart()
	defer app.RequireStop()
	base := "http://" + s.Addr()
	require.NotContains(t, s.Addr(), ":0", "the bound port is reported")

	code, body := get(t, base+"/admin/v1/hello/plba")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"hello":"plba"}`, body)
	code, _ = get(t, base+"/admin/v1/status")
	require.Equal(t, http.StatusOK, code)
	code, _ = get(t, base+"/livez")
	require.Equal(t, http.StatusOK, code)

	// The log level: read, change, refuse nonsense.
	url := base + admin.LogLevelPath
	code, body = get(t, url)
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"level":"info"}`, body)

	code, body = do(t, http.MethodPut, url, `{"level":"debug"}`)
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `{"level":"debug"}`, body)
	require.Equal(t, zapcore.DebugLevel, level.Level())
	changed := logs.FilterMessage("log level changed").All()
	require.Len(t, changed, 1)
	require.Equal(t, "info", changed[0].ContextMap()["from"])
	require.Equal(t, "debug", changed[0].ContextMap()["to"])

	for _, bad := range []string{`{"level":"loud"}`, `{"level":""}`, `debug`, `{"level":"warn","x":1}`, ``,
		`{"level":"fatal"}`, `{"level":"dpanic"}`, `{"level":"warn"} trailing`, `{"level":"warn"}{"level":"error"}`} {
		code, body = do(t, http.MethodPut, url, bad)
		require.Equal(t, http.StatusBadRequest, code, "body %q", bad)
		var e admin.Error
		require.NoError(t, json.Unmarshal([]byte(body), &e))
		require.NotEmpty(t, e.Error)
		require.Equal(t, zapcore.DebugLevel, level.Level(), "unchanged after %q", bad)
	}
	code, _ = do(t, http.MethodPost, url, `{"level":"error"}`)
	require.Equal(t, http.StatusMethodNotAllowed, code)

	code, _ = get(t, base+"/nope")
	require.Equal(t, http.StatusNotFound, code)
}

func TestNoLogLevelWithoutLevel(t *testing.T) {
	t.Parallel()
	var s *admin.Server
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(local(), admin.StatusInfo{}, zap.NewNop(), lifecycle.NewRegistry(nil, nil)),
		health.Module,
		admin.Module,
		fx.Populate(&s),
	)
	app.RequireStart()
	defer app.RequireStop()
	code, _ := get(t, "http://"+s.Addr()+admin.LogLevelPath)
	require.Equal(t, http.StatusNotFound, code)
}

func TestStartFailsWhenAddressTaken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	cfg := local()
	cfg.Listen = ln.Addr().String()
	s, err := admin.NewServer(cfg, nil, admin.StatusInfo{}, nil, nil, nil)
	require.NoError(t, err)
	err = s.Start(context.Background())
	require.Error(t, err)
	require.Contains(t, err.Error(), "admin: listen")
	require.NoError(t, s.Stop(context.Background()), "stop without a start is fine")
}

// slowServer starts a server with a route that blocks until release is
// closed, and returns its base URL.
func slowServer(t *testing.T, entered chan<- struct{}, release <-chan struct{}) (*admin.Server, string) {
	t.Helper()
	return slowServerWith(t, local(), nil, entered, release)
}

// slowServerWith is slowServer with cfg and log.
func slowServerWith(t *testing.T, cfg admin.Config, log *zap.Logger, entered chan<- struct{}, release <-chan struct{}) (*admin.Server, string) {
	t.Helper()
	route := admin.Route{Pattern: "GET /slow", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "done")
	})}
	s, err := admin.NewServer(cfg, log, admin.StatusInfo{}, nil, nil, []admin.Route{route})
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	return s, "http://" + s.Addr()
}

type reply struct {
	code int
	body string
	err  error
}

func fetch(url string) <-chan reply {
	ch := make(chan reply, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			ch <- reply{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- reply{code: resp.StatusCode, body: string(b), err: err}
	}()
	return ch
}

// TestGracefulShutdown: Stop lets an in-flight request finish, refuses new
// connections meanwhile, and returns once the request is done.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	s, base := slowServer(t, entered, release)
	inflight := fetch(base + "/slow")
	<-entered

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stopped <- s.Stop(ctx)
	}()
	// The listener closes at once: new connections are refused.
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err != nil {
			return true
		}
		_ = c.Close()
		return false
	}, 10*time.Second, 10*time.Millisecond)
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v while a request was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}

	close(release)
	r := <-inflight
	require.NoError(t, r.err)
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, "done", r.body)
	require.NoError(t, <-stopped)
	require.NoError(t, s.Stop(context.Background()), "a second stop is fine")
}

// TestShutdownTakesABoundedPartOfTheBudget: a request that outlives the
// shutdown grace is cut off after at most half of the stop budget left,
// so the hooks that stop after the admin server (pools, stores) still
// have the rest; the cut is logged, and Stop succeeds (the server has
// stopped).
func TestShutdownTakesABoundedPartOfTheBudget(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	core, logs := observer.New(zapcore.WarnLevel)
	s, base := slowServerWith(t, local(), zap.New(core), entered, release)
	inflight := fetch(base + "/slow")
	<-entered

	budget := 4 * time.Second // the default shutdown_timeout is 5s
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	require.NoError(t, s.Stop(ctx))
	took := time.Since(start)
	require.NoError(t, ctx.Err(), "Stop used the whole budget (%s)", took)
	require.GreaterOrEqual(t, took, budget/2-100*time.Millisecond, "the request had its grace")
	r := <-inflight
	require.Error(t, r.err, "the connection was closed under the request")
	cut := logs.FilterMessageSnippet("connections closed").All()
	require.Len(t, cut, 1)
	require.Equal(t, int64(1), cut[0].ContextMap()["connections"])
}

// TestShutdownTimeoutBoundsTheGrace: admin.shutdown_timeout bounds the
// grace below half the budget.
func TestShutdownTimeoutBoundsTheGrace(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	cfg := local()
	cfg.ShutdownTimeout = 200 * time.Millisecond
	s, base := slowServerWith(t, cfg, nil, entered, release)
	inflight := fetch(base + "/slow")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	require.NoError(t, s.Stop(ctx))
	require.Less(t, time.Since(start), 20*time.Second)
	require.Error(t, (<-inflight).err)
}

// TestStopAfterTheBudgetIsAnError: a stop whose context has already ended
// says so.
func TestStopAfterTheBudgetIsAnError(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	s, base := slowServer(t, entered, release)
	inflight := fetch(base + "/slow")
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Stop(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "admin: shutdown")
	require.Error(t, (<-inflight).err)
}

// TestSlowBodyIsCutByReadTimeout: a client that trickles a request body
// holds its connection no longer than admin.read_timeout.
func TestSlowBodyIsCutByReadTimeout(t *testing.T) {
	t.Parallel()
	level := zap.NewAtomicLevel()
	cfg := local()
	cfg.ReadTimeout = 300 * time.Millisecond
	s, err := admin.NewServer(cfg, nil, admin.StatusInfo{}, nil, nil, admin.LogLevelRoutes(level, nil))
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })

	c, err := net.Dial("tcp", s.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "PUT "+admin.LogLevelPath+" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	require.NoError(t, err)
	start := time.Now()
	closed := false
	for time.Since(start) < 20*time.Second && !closed {
		time.Sleep(50 * time.Millisecond)
		if _, err := io.WriteString(c, " "); err != nil {
			closed = true
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		var b [512]byte
		if n, err := c.Read(b[:]); n > 0 || (err != nil && !errors.Is(err, os.ErrDeadlineExceeded)) {
			closed = true // an error answer or the connection closed
		}
	}
	require.True(t, closed, "the trickling client was never cut off")
	require.Less(t, time.Since(start), 10*time.Second)
}

// TestLogLevelChangeIsAlwaysLogged: the audit line of a level change is
// written whether the change raises the level above warn or lowers it
// from above warn.
func TestLogLevelChangeIsAlwaysLogged(t *testing.T) {
	t.Parallel()
	level := zap.NewAtomicLevelAt(zapcore.InfoLevel)
	core, logs := observer.New(level) // the audit logger obeys the level it changes
	var put http.Handler
	for _, r := range admin.LogLevelRoutes(level, zap.New(core)) {
		if strings.HasPrefix(r.Pattern, "PUT ") {
			put = r.Handler
		}
	}
	require.NotNil(t, put)
	for _, to := range []string{"error", "debug", "error", "info"} {
		rec := httptest.NewRecorder()
		put.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, admin.LogLevelPath, strings.NewReader(`{"level":"`+to+`"}`)))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	}
	var got []string
	for _, e := range logs.FilterMessage("log level changed").All() {
		got = append(got, e.ContextMap()["from"].(string)+"->"+e.ContextMap()["to"].(string))
	}
	require.Equal(t, []string{"info->error", "error->debug", "debug->error", "error->info"}, got)
}

// TestLogLevelBodyIsOneObject: a valid object followed by junk is refused
// wherever the junk starts, also past the body limit (1 KiB), and the
// level stays as it was.
func TestLogLevelBodyIsOneObject(t *testing.T) {
	t.Parallel()
	level := zap.NewAtomicLevelAt(zapcore.InfoLevel)
	var put http.Handler
	for _, r := range admin.LogLevelRoutes(level, nil) {
		if strings.HasPrefix(r.Pattern, "PUT ") {
			put = r.Handler
		}
	}
	require.NotNil(t, put)
	obj := `{"level":"debug"}`
	for _, tc := range []struct {
		name string
		body string
		code int
	}{
		{"junk right after", obj + "junk", http.StatusBadRequest},
		{"junk before the limit", obj + strings.Repeat(" ", 900) + "junk", http.StatusBadRequest},
		{"junk past the limit", obj + strings.Repeat(" ", 2000) + "junk", http.StatusRequestEntityTooLarge},
		{"second object past the limit", obj + strings.Repeat("\n", 1100) + `{"level":"error"}`, http.StatusRequestEntityTooLarge},
		{"large body", strings.Repeat(" ", 4096) + obj, http.StatusRequestEntityTooLarge},
	} {
		rec := httptest.NewRecorder()
		put.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, admin.LogLevelPath, strings.NewReader(tc.body)))
		require.Equal(t, tc.code, rec.Code, "%s: %s", tc.name, rec.Body.String())
		var e admin.Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), tc.name)
		require.NotEmpty(t, e.Error, tc.name)
		require.Equal(t, zapcore.InfoLevel, level.Level(), "%s: level changed", tc.name)
	}
	rec := httptest.NewRecorder()
	put.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, admin.LogLevelPath, strings.NewReader(obj+"\n")))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, zapcore.DebugLevel, level.Level())
}

// TestJSONKeepsAngleBrackets: an error naming a mail address reads as it
// is in /admin/v1/status and /healthz, not as \u003c escapes.
func TestJSONKeepsAngleBrackets(t *testing.T) {
	t.Parallel()
	comps := lifecycle.NewRegistry(nil, nil)
	comps.MustRegister("source/mailbox", lifecycle.StayDegraded, lifecycle.External(false)).
		Fail(errors.New("mail <a@b.example> & co rejected"))
	hr, err := health.NewRegistry(health.Options{}, comps, nil)
	require.NoError(t, err)
	s, err := admin.NewServer(local(), nil, admin.StatusInfo{}, comps, hr, nil)
	require.NoError(t, err)
	for _, path := range []string{"/admin/v1/status", "/healthz"} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		require.Contains(t, rec.Body.String(), "mail <a@b.example> & co rejected", path)
		require.True(t, json.Valid(rec.Body.Bytes()), path)
	}
}

// TestListeningLineListsThePages: the line the server logs when it
// listens lists the URLs worth opening: status, health and the
// contributed GET routes marked Page (not the API, not patterns with
// wildcards, not the log level).
func TestListeningLineListsThePages(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.InfoLevel)
	hr, err := health.NewRegistry(health.Options{}, nil, nil)
	require.NoError(t, err)
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	routes := append([]admin.Route{
		{Pattern: "GET /metrics", Handler: ok, Page: true},
		{Pattern: "GET /admin/v1/mailorder", Handler: ok, Page: true},
		{Pattern: "GET /admin/v1/queues", Handler: ok},
		{Pattern: "GET /admin/v1/hello/{name}", Handler: ok, Page: true},
		{Pattern: "POST /admin/v1/pause", Role: admin.RoleOperator, Handler: ok},
	}, admin.LogLevelRoutes(zap.NewAtomicLevel(), nil)...)
	s, err := admin.NewServer(local(), zap.New(core), admin.StatusInfo{}, nil, hr, routes)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })
	lines := logs.FilterMessage("admin server listening").All()
	require.Len(t, lines, 1)
	base := "http://" + s.Addr()
	require.Equal(t, []any{base + admin.StatusPath, base + "/healthz", base + "/admin/v1/mailorder", base + "/metrics"},
		lines[0].ContextMap()["open"])
}
