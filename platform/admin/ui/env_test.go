package ui_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/ui"
	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

const (
	testQueue    = "jobs"
	testKind     = "job"
	testSource   = "ticker"
	password     = "correct-horse-battery"
	operatorName = "olive"
	viewerName   = "victor"
	operatorTok  = "operator-token-0123456789abcdef"
	viewerTok    = "viewer-token-0123456789abcdef01"
)

// env is a host in miniature: a memory backend, a pool on testQueue
// whose handler fails for good while fail is set (and takes delay per
// task), a source, health checks, the control API, the UI and the admin
// server with an operator and a viewer (users and tokens), listening on
// loopback.
type env struct {
	t     testing.TB
	base  string
	b     *memory.Backend
	api   *flaky // the control API's backend: b, failing on demand
	rt    *worker.Runtime
	srv   *admin.Server
	fail  atomic.Bool
	delay atomic.Int64 // nanoseconds per task
	ran   atomic.Int64
	src   *ticker
}

// ticker emits a task every interval while it runs (and is not paused).
type ticker struct{ every time.Duration }

func (s *ticker) Name() string { return testSource }

func (s *ticker) Run(ctx context.Context, emit source.Emitter) error {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := emit.Emit(ctx, &task.Task{Kind: testKind, Queue: testQueue, Payload: []byte(`{"from":"ticker"}`)}); err != nil && ctx.Err() == nil {
				return err
			}
		}
	}
}

// appPage is an application page as an app contributes it.
var appPage = ui.Page{Slug: "things", Title: "Things", Render: func(r *http.Request) (ui.Content, error) {
	if r.URL.Query().Get("broken") != "" {
		return ui.Content{}, errors.New("the store is down")
	}
	if c := r.URL.Query().Get("cursor"); c != "" {
		return ui.Content{}, fmt.Errorf("things: cursor %q: %w", c, queue.ErrBadCursor)
	}
	return ui.Content{Sections: []ui.Section{{Title: "Recent things", Columns: []string{"Name", "When"},
		Rows: [][]any{{"<b>first</b>", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, {"second", 2}}, Next: "page=2"}}}, nil
}}

func newEnv(t testing.TB, authOff bool) *env {
	t.Helper()
	e := &env{t: t, b: memory.New(memory.Options{}), src: &ticker{every: time.Hour}}
	route := task.Route{Kind: testKind, Queue: testQueue, MaxAttempts: 1, Handler: task.HandlerFunc(func(ctx context.Context, tk *task.Task) error {
		e.ran.Add(1)
		if d := time.Duration(e.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if e.fail.Load() {
			return task.Permanent(errors.New("upstream refused the order"))
		}
		return nil
	})}
	comps := lifecycle.NewRegistry(nil, nil)
	rt, err := worker.New(worker.Params{Routes: []task.Route{route}, Backend: e.b, Config: worker.Config{testQueue: worker.PoolConfig{Concurrency: 2}},
		Sources: []source.Source{e.src}, Registry: comps})
	require.NoError(t, err)
	e.rt = rt
	hr, err := health.NewRegistry(health.Options{DefaultInterval: time.Second}, comps, []health.Check{
		{Name: "database", Func: func(context.Context) error { return nil }, Gating: true},
		{Name: "mailbox", Func: func(context.Context) error { return errors.New("mailbox <inbox> unreachable") }},
	})
	require.NoError(t, err)
	e.api = &flaky{Backend: e.b}
	api := control.New(control.Params{Backend: e.api, Runtime: rt})
	u, err := ui.New(ui.Params{Pages: []ui.Page{appPage}})
	require.NoError(t, err)
	cfg := admin.Config{Listen: "127.0.0.1:0"}
	if !authOff {
		h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		require.NoError(t, err)
		cfg.Auth = admin.AuthConfig{
			Users: []admin.UserConfig{
				{Name: operatorName, Role: admin.RoleOperator, PasswordHash: string(h)},
				{Name: viewerName, Role: admin.RoleViewer, PasswordHash: string(h)},
			},
			Tokens: []admin.TokenConfig{
				{Name: "op-bot", Role: admin.RoleOperator, Token: operatorTok},
				{Name: "view-bot", Role: admin.RoleViewer, Token: viewerTok},
			},
			FailedAttempts: 1000,
		}
	}
	routes := append(append(api.Routes(), u.Routes()...), admin.LogLevelRoutes(zap.NewAtomicLevel(), nil)...)
	srv, err := admin.NewServer(cfg, nil, admin.StatusInfo{Version: "v9.8.7", ConfigDigest: "cafe1234", Started: time.Now()}, comps, hr, routes)
	require.NoError(t, err)
	u.Bind(srv.Handler())
	e.srv = srv
	ctx := context.Background()
	hr.Start()
	require.NoError(t, api.Start(ctx))
	require.NoError(t, rt.Start(ctx))
	require.NoError(t, srv.Start(ctx))
	e.base = "http://" + srv.Addr()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
		_ = rt.Stop(ctx)
		_ = api.Stop(ctx)
		hr.Stop()
		_ = e.b.Close(ctx)
	})
	return e
}

// flaky is the control API's view of the env's backend. While broken is
// set, a re-drive does its work and then fails before it says so (the
// connection lost), and the next read of dead letters (the API's check
// of what the re-drive did) fails too: what it did cannot be checked.
type flaky struct {
	queue.Backend
	broken atomic.Bool
	lost   atomic.Bool
}

var errConnectionLost = errors.New("backend: connection lost")

func (f *flaky) Redrive(ctx context.Context, q string, ids ...string) (int, error) {
	n, err := f.Backend.Redrive(ctx, q, ids...)
	if err != nil || !f.broken.Load() {
		return n, err
	}
	f.lost.Store(true)
	return 0, errConnectionLost
}

func (f *flaky) QueryDead(ctx context.Context, q string, dq queue.DeadQuery) (queue.DeadPage, error) {
	if f.lost.CompareAndSwap(true, false) {
		return queue.DeadPage{}, errConnectionLost
	}
	return f.Backend.QueryDead(ctx, q, dq)
}

// enqueue puts n tasks on testQueue and returns their ids.
func (e *env) enqueue(n int) []string {
	e.t.Helper()
	var ids []string
	for range n {
		tk := &task.Task{Kind: testKind, Queue: testQueue, Payload: []byte(`{"order":{"id":42,"lines":[1,2]}}`)}
		require.NoError(e.t, e.rt.Producer().Enqueue(context.Background(), tk))
		ids = append(ids, tk.ID)
	}
	return ids
}

// dead returns how many dead letters testQueue holds.
func (e *env) dead() int64 {
	st, err := e.b.Stats(context.Background(), testQueue)
	require.NoError(e.t, err)
	return st.Dead
}

// eventually waits for cond, failing with what after 20 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 10*time.Millisecond, what)
}

// client is a browser without JavaScript: a cookie jar, no redirects
// followed unless asked.
type client struct {
	t     testing.TB
	e     *env
	hc    *http.Client
	token string // a bearer token instead of a session
	csrf  string
}

func (e *env) client() *client {
	jar, err := cookiejar.New(nil)
	require.NoError(e.t, err)
	return &client{t: e.t, e: e, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// response is what a request got.
type response struct {
	code int
	hdr  http.Header
	body string
}

// do sends method path with form (nil: none); htmx marks it an htmx
// request carrying the CSRF token in its header as htmx does.
func (c *client) do(method, path string, form url.Values, htmx bool) response {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.e.base+path, body)
	require.NoError(c.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if htmx {
		req.Header.Set("HX-Request", "true")
		if c.csrf != "" {
			req.Header.Set(admin.CSRFHeader, c.csrf)
		}
	}
	res, err := c.hc.Do(req)
	require.NoError(c.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(c.t, err)
	return response{code: res.StatusCode, hdr: res.Header, body: string(b)}
}

func (c *client) get(path string) response { return c.do(http.MethodGet, path, nil, false) }

var (
	hiddenToken = regexp.MustCompile(`name="token" value="([^"]+)"`)
	headersAttr = regexp.MustCompile(`hx-headers="([^"]*)"`)
	csrfValue   = regexp.MustCompile(`"X-CSRF-Token":"([^"]+)"`)
)

// signIn signs in through the sign-in form as name and keeps the
// session's CSRF token (from the page's hx-headers).
func (c *client) signIn(name string) {
	c.t.Helper()
	page := c.get("/ui/signin")
	require.Equal(c.t, http.StatusOK, page.code, page.body)
	m := hiddenToken.FindStringSubmatch(page.body)
	require.NotNil(c.t, m, "the sign-in form has its token")
	res := c.do(http.MethodPost, "/ui/signin", url.Values{"token": {m[1]}, "name": {name}, "password": {password}}, false)
	require.Equal(c.t, http.StatusSeeOther, res.code, res.body)
	require.Equal(c.t, "/ui/", res.hdr.Get("Location"))
	over := c.get("/ui/")
	require.Equal(c.t, http.StatusOK, over.code, over.body)
	h := headersAttr.FindStringSubmatch(over.body)
	require.NotNil(c.t, h)
	cm := csrfValue.FindStringSubmatch(strings.ReplaceAll(h[1], "&#34;", `"`))
	require.NotNil(c.t, cm, "the page carries the CSRF token for htmx: %s", h[1])
	c.csrf = cm[1]
}
