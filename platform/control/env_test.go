package control_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

const (
	testQueue = "ctl"
	testKind  = "ctl.job"
)

// backendKind opens one kind of backend for a test.
type backendKind struct {
	name string
	open func(t *testing.T) (queue.Backend, queue.OverrideStore, func(t *testing.T) (queue.Backend, queue.OverrideStore))
}

// backends are the backends every API test runs on: memory, and
// JetStream (an embedded server per test, storing in the test's
// directory). The third result reopens
// the same store (JetStream only; nil for memory).
func backends() []backendKind {
	return []backendKind{
		{name: "memory", open: func(t *testing.T) (queue.Backend, queue.OverrideStore, func(*testing.T) (queue.Backend, queue.OverrideStore)) {
			b := memory.New(memory.Options{})
			t.Cleanup(func() { _ = b.Close(context.Background()) })
			return b, &queue.MemoryOverrides{}, nil
		}},
		{name: "jetstream", open: func(t *testing.T) (queue.Backend, queue.OverrideStore, func(*testing.T) (queue.Backend, queue.OverrideStore)) {
			cfg := jetstreamConfig(t)
			b := openJetStream(t, cfg)
			reopen := func(t *testing.T) (queue.Backend, queue.OverrideStore) {
				b := openJetStream(t, cfg)
				return b, b.Overrides()
			}
			return b, b.Overrides(), reopen
		}},
	}
}

// jetstreamConfig is an embedded server per test, storing in the test's
// directory (a reopen finds the same store).
func jetstreamConfig(t *testing.T) jetstream.Config {
	return jetstream.Config{Mode: jetstream.ModeEmbedded, MaxDeliver: 10, AckWait: 5 * time.Second,
		Embedded: embedded.Config{StoreDir: t.TempDir()}}
}

// openJetStream starts a backend and closes it when t ends (or earlier,
// through the returned backend's Close, for restart tests).
func openJetStream(t *testing.T, cfg jetstream.Config) *jetstream.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := jetstream.Open(ctx, jetstream.Params{Config: cfg})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// env is a runtime with one routed kind on a backend, and the API served
// over HTTP.
type env struct {
	t       *testing.T
	b       queue.Backend
	rt      *worker.Runtime
	srv     *httptest.Server
	handler atomic.Pointer[task.HandlerFunc]
	ran     atomic.Int64
	logs    *observer.ObservedLogs // the admin server's log (the audit)
}

func newEnv(t *testing.T, b queue.Backend, store queue.OverrideStore, pc worker.PoolConfig) *env {
	t.Helper()
	return newEnvAPI(t, b, b, store, pc)
}

// newEnvAPI is newEnv whose API calls apiB, a wrapper of b that disturbs
// the API's calls only (the runtime calls b).
func newEnvAPI(t *testing.T, b, apiB queue.Backend, store queue.OverrideStore, pc worker.PoolConfig) *env {
	t.Helper()
	e := &env{t: t, b: b}
	ok := task.HandlerFunc(func(context.Context, *task.Task) error { return nil })
	e.handler.Store(&ok)
	route := task.Route{Kind: testKind, Queue: testQueue, MaxAttempts: 1, Handler: task.HandlerFunc(func(ctx context.Context, tk *task.Task) error {
		e.ran.Add(1)
		return (*e.handler.Load())(ctx, tk)
	})}
	rt, err := worker.New(worker.Params{Routes: []task.Route{route}, Backend: b, Config: worker.Config{testQueue: pc}, Overrides: store})
	require.NoError(t, err)
	e.rt = rt
	api := control.New(control.Params{Backend: apiB, Runtime: rt})
	// Served by the admin server's own mux (audit included), its log
	// observed.
	core, logs := observer.New(zap.InfoLevel)
	e.logs = logs
	as, err := admin.NewServer(admin.Config{Listen: "127.0.0.1:0"}, zap.New(core), admin.StatusInfo{}, nil, nil, api.Routes())
	require.NoError(t, err)
	e.srv = httptest.NewServer(as.Handler())
	require.NoError(t, api.Start(context.Background()))
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = rt.Stop(ctx)
		_ = api.Stop(ctx)
		e.srv.Close()
	})
	return e
}

// stop stops the runtime (for restart tests).
func (e *env) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(e.t, e.rt.Stop(ctx))
}

func (e *env) setHandler(f func(context.Context, *task.Task) error) {
	h := task.HandlerFunc(f)
	e.handler.Store(&h)
}

// call makes a request and decodes a 2xx answer into out; it returns the
// status code and the body.
func (e *env) call(method, path string, body any, out any) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		require.NoError(e.t, err)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	require.NoError(e.t, err)
	resp, err := e.srv.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	if out != nil && resp.StatusCode/100 == 2 {
		require.NoError(e.t, json.Unmarshal(raw, out), "body: %s", raw)
	}
	return resp.StatusCode, string(raw)
}

// mustCall is call that requires status want.
func (e *env) mustCall(want int, method, path string, body any, out any) {
	e.t.Helper()
	code, raw := e.call(method, path, body, out)
	require.Equal(e.t, want, code, "%s %s: %s", method, path, raw)
}

// enqueue enqueues n tasks of testKind through the runtime's producer.
func (e *env) enqueue(n int, payload string) []string {
	e.t.Helper()
	ids := make([]string, n)
	for i := range n {
		tk := &task.Task{Kind: testKind, Payload: []byte(payload)}
		require.NoError(e.t, e.rt.Producer().Enqueue(context.Background(), tk))
		ids[i] = tk.ID
	}
	return ids
}

// eventually polls cond every 20ms for up to 20s (a loaded machine).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
