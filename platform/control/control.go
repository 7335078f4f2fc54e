// Package control is the host's control plane API: JSON routes under
// /admin/v1 that an operator (or `host ctl`) reads and acts through —
// queues with their counts and rates, dead letters (list, show, re-drive,
// purge), pools (pause, resume, resize, overrides that outlive a
// restart on a durable backend), sources (pause, resume), tasks (look up,
// enqueue), the effective configuration and Go's pprof. Every route
// declares its admin.Role (viewer reads, operator acts, admin for the
// configuration and pprof) and is described in the OpenAPI 3.1 document
// served at GET /admin/v1/openapi.json. Every state-changing route records
// what it did with admin.Audit. Authentication and role enforcement are
// the admin server's.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/worker"
)

// Prefix is the path prefix of every route of the API.
const Prefix = "/admin/v1"

// Params are what the API takes from the graph.
type Params struct {
	fx.In

	Backend   queue.Backend
	Runtime   *worker.Runtime
	Config    *config.Config `optional:"true"`
	Log       *zap.Logger    `optional:"true"`
	Lifecycle fx.Lifecycle   `optional:"true"`
}

// API holds the state of the control routes: the rate sampler.
type API struct {
	backend queue.Backend
	rt      *worker.Runtime
	cfg     *config.Config
	log     *zap.Logger
	rates   *rates
	doc     served // the OpenAPI document with the contributed routes (openapi.go)
	history *history
}

// New returns the API; its rate sampler runs between Start and Stop.
func New(p Params) *API {
	log := p.Log
	if log == nil {
		log = zap.NewNop()
	}
	a := &API{backend: p.Backend, rt: p.Runtime, cfg: p.Config, log: log.Named("control"), rates: newRates(time.Minute, sampleEvery),
		history: newHistory(ThroughputWindow, sampleEvery)}
	if p.Lifecycle != nil {
		p.Lifecycle.Append(fx.Hook{OnStart: a.Start, OnStop: a.Stop})
	}
	return a
}

// sampleEvery is how often the rate sampler reads the counters.
const sampleEvery = 5 * time.Second

// Start starts the rate sampler (the goroutine is owned by the API and
// ended by Stop).
func (a *API) Start(context.Context) error {
	a.rates.start(func() map[string]counts {
		c := a.sample()
		a.history.add(time.Now(), c)
		return c
	})
	return nil
}

// Stop stops the rate sampler.
func (a *API) Stop(context.Context) error {
	a.rates.stop()
	return nil
}

// routesOut contributes the API's routes to the admin server.
type routesOut struct {
	fx.Out
	Routes []admin.Route `group:"admin.routes,flatten"`
}

// Module provides the API and contributes its routes to the admin server,
// whose other routes (an application's) its OpenAPI document describes
// too (Describe).
// The runtime's queue.OverrideStore (durable on JetStream) is the
// platform's: see platform.Module.
var Module = fx.Module("control",
	fx.Provide(New, func(a *API) routesOut { return routesOut{Routes: a.Routes()} }),
	fx.Invoke(fx.Annotate(func(a *API, s *admin.Server) {
		if s != nil {
			a.Describe(s.Routes)
		}
	}, fx.ParamTags(``, `optional:"true"`))),
)

// Routes returns every route of the API, with the role each requires.
func (a *API) Routes() []admin.Route {
	h := func(f func(w http.ResponseWriter, r *http.Request) error) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r); err != nil {
				writeError(w, err)
			}
		})
	}
	v, op, ad := admin.RoleViewer, admin.RoleOperator, admin.RoleAdmin
	rs := []admin.Route{
		{Pattern: "GET " + Prefix + "/openapi.json", Role: v, Handler: h(a.openAPI)},
		{Pattern: "GET " + Prefix + "/queues", Role: v, Handler: h(a.listQueues)},
		{Pattern: "GET " + Prefix + "/queues/{queue}", Role: v, Handler: h(a.getQueue)},
		{Pattern: "GET " + Prefix + "/queues/{queue}/dead", Role: v, Handler: h(a.listDead)},
		{Pattern: "GET " + Prefix + "/queues/{queue}/dead/{id}", Role: v, Handler: h(a.getDead)},
		{Pattern: "POST " + Prefix + "/queues/{queue}/dead/redrive", Role: op, Handler: h(a.redriveDead)},
		{Pattern: "POST " + Prefix + "/queues/{queue}/dead/purge", Role: op, Handler: h(a.purgeDead)},
		{Pattern: "GET " + Prefix + "/queues/{queue}/tasks", Role: v, Handler: h(a.findTasks)},
		{Pattern: "GET " + Prefix + "/queues/{queue}/tasks/{id}", Role: v, Handler: h(a.getTask)},
		{Pattern: "POST " + Prefix + "/tasks", Role: op, Handler: h(a.enqueue)},
		{Pattern: "GET " + Prefix + "/pools", Role: v, Handler: h(a.listPools)},
		{Pattern: "GET " + Prefix + "/pools/{queue}", Role: v, Handler: h(a.getPool)},
		{Pattern: "POST " + Prefix + "/pools/{queue}/pause", Role: op, Handler: h(a.pausePool)},
		{Pattern: "POST " + Prefix + "/pools/{queue}/resume", Role: op, Handler: h(a.resumePool)},
		{Pattern: "POST " + Prefix + "/pools/{queue}/resize", Role: op, Handler: h(a.resizePool)},
		{Pattern: "DELETE " + Prefix + "/pools/{queue}/override", Role: op, Handler: h(a.clearPool)},
		{Pattern: "GET " + Prefix + "/throughput", Role: v, Handler: h(a.throughput)},
		{Pattern: "GET " + Prefix + "/sources", Role: v, Handler: h(a.listSources)},
		{Pattern: "POST " + Prefix + "/sources/{name}/pause", Role: op, Handler: h(a.pauseSource)},
		{Pattern: "POST " + Prefix + "/sources/{name}/resume", Role: op, Handler: h(a.resumeSource)},
		{Pattern: "GET " + Prefix + "/config", Role: ad, Handler: h(a.getConfig)},
	}
	return append(rs, pprofRoutes()...)
}

// httpError is an error with its HTTP status.
type httpError struct {
	code int
	err  error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

func status(code int, format string, args ...any) error {
	return &httpError{code: code, err: fmt.Errorf(format, args...)}
}

// writeError answers err with its status: 400 for bad input, 413 for a
// task the backend refuses as too large (queue.ErrTooLarge), 404 for an
// unknown queue, pool, source or dead letter, 504 when the backend
// cannot tell what it did (queue.ErrOutcomeUnknown), 503 when the
// backend is closed, 500 otherwise.
func writeError(w http.ResponseWriter, err error) {
	admin.WriteJSON(w, statusOf(err), admin.Error{Error: err.Error()})
}

// statusOf is the status writeError answers err with.
func statusOf(err error) int {
	code := http.StatusInternalServerError
	var he *httpError
	switch {
	case errors.As(err, &he):
		code = he.code
	case errors.Is(err, queue.ErrNotFound), errors.Is(err, worker.ErrUnknownPool):
		code = http.StatusNotFound
	case errors.Is(err, queue.ErrBadCursor), errors.Is(err, worker.ErrInvalidSize), errors.Is(err, queue.ErrInvalidTask):
		code = http.StatusBadRequest
	case errors.Is(err, queue.ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, queue.ErrOutcomeUnknown):
		code = http.StatusGatewayTimeout
	case errors.Is(err, queue.ErrClosed):
		code = http.StatusServiceUnavailable
	}
	return code
}

// maxBody bounds a request body (a task payload included).
const maxBody = 1 << 20

// decodeBody decodes r's JSON body into v: one object, no unknown field.
// An empty body leaves v as it is.
func decodeBody(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return status(http.StatusBadRequest, "read body: %v", err)
	}
	if len(body) > maxBody {
		return status(http.StatusRequestEntityTooLarge, "body larger than %d bytes", maxBody)
	}
	if len(body) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return status(http.StatusBadRequest, "body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return status(http.StatusBadRequest, "body: one JSON object, nothing after it")
	}
	return nil
}
