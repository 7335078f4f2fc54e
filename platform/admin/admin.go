// Package admin is the host's control-plane HTTP server: health probes,
// status, metrics and the routes other parts of the platform contribute
// (queues, pools, dead letters). It listens on admin.listen, by default
// 127.0.0.1:8080, and shuts down gracefully within the stop timeout.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
)

// RoutesGroup is the fx value group admin routes are collected in.
const RoutesGroup = "admin.routes"

// Route is an HTTP handler contributed to the admin server.
type Route struct {
	// Pattern is an http.ServeMux pattern, e.g. "GET /admin/v1/queues".
	Pattern string
	// Role is the role a request needs (empty: RoleViewer). A route that
	// changes state needs at least RoleOperator.
	Role    Role
	Handler http.Handler
}

// AsRoute annotates a constructor returning a Route so its result joins the
// "admin.routes" group.
func AsRoute(ctor any) any {
	return fx.Annotate(ctor, fx.ResultTags(`group:"`+RoutesGroup+`"`))
}

// StatusInfo is the fixed part of /admin/v1/status.
type StatusInfo struct {
	Version      string
	Commit       string
	ConfigDigest string
	Started      time.Time
}

// Status is the JSON body of GET /admin/v1/status.
type Status struct {
	Version      string             `json:"version"`
	Commit       string             `json:"commit"`
	GoVersion    string             `json:"go_version,omitempty"`
	Started      time.Time          `json:"started"`
	Uptime       string             `json:"uptime"`
	ConfigDigest string             `json:"config_digest"`
	Live         bool               `json:"live"`
	Ready        bool               `json:"ready"`
	Components   []lifecycle.Status `json:"components"`
}

// Server is the admin HTTP server.
type Server struct {
	cfg    Config
	log    *zap.Logger
	srv    *http.Server
	ln     net.Listener
	mux    *http.ServeMux
	audit  *recorder
	done   chan struct{}
	serveE error
	conns  conns
}

// Handler returns the server's handler (for tests with httptest).
func (s *Server) Handler() http.Handler { return s.mux }

// Addr returns the address the server listens on, once started.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// NewServer validates cfg (a zero timeout takes its default) and builds
// the server's routes. It does not listen until Start.
func NewServer(cfg Config, log *zap.Logger, info StatusInfo, comps *lifecycle.Registry, hr *health.Registry, routes []Route) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	mux := http.NewServeMux()
	if hr != nil {
		hr.Mount(mux)
	}
	mux.HandleFunc("GET /admin/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		st := Status{
			Version: info.Version, Commit: info.Commit, Started: info.Started,
			Uptime: time.Since(info.Started).Round(time.Millisecond).String(), ConfigDigest: info.ConfigDigest,
			Live: true, Ready: true,
		}
		if hr != nil {
			st.Live, _ = hr.Live()
			st.Ready, _ = hr.Ready()
		}
		if comps != nil {
			st.Components = comps.Snapshot()
		}
		WriteJSON(w, http.StatusOK, st)
	})
	s := &Server{cfg: cfg, log: log, mux: mux, audit: newRecorder(log), done: make(chan struct{})}
	sorted := append([]Route(nil), routes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Pattern < sorted[j].Pattern })
	for _, r := range sorted {
		r.Handler = audited(s.audit, r.Pattern, r.Handler)
		if err := register(mux, r); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func register(mux *http.ServeMux, r Route) (err error) {
	defer func() {
		if p := recover(); p != nil { // ServeMux panics on conflicting patterns
			err = fmt.Errorf("admin: route %q: %v", r.Pattern, p)
		}
	}()
	mux.Handle(r.Pattern, r.Handler)
	return nil
}

// Start listens (failing fast when the address is taken) and serves in a
// goroutine owned by the server.
func (s *Server) Start(context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("admin: listen %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ConnState:         s.conns.track,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveE = err
			s.log.Error("admin server stopped", zap.Error(err))
		}
	}()
	s.log.Info("admin server listening", zap.String("addr", ln.Addr().String()))
	return nil
}

// Stop shuts the server down: it stops listening, closes idle
// connections and waits for the requests in progress, for at most
// Config.ShutdownTimeout and at most half of what is left of ctx (the rest
// of the stop budget belongs to the pools and stores that stop after the
// admin server). Connections still open then (a client trickling a
// request body) are closed, and that is logged, not an error: the server
// has stopped either way. Stop returns an error only when ctx itself ended.
func (s *Server) Stop(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	grace := s.cfg.ShutdownTimeout
	if dl, ok := ctx.Deadline(); ok {
		grace = min(grace, time.Until(dl)/2)
	}
	sctx, cancel := context.WithTimeout(ctx, grace)
	err := s.srv.Shutdown(sctx)
	cancel()
	if err != nil {
		open := s.conns.open.Load()
		_ = s.srv.Close()
		s.log.Warn("admin server: requests still open after the shutdown grace, connections closed",
			zap.Duration("grace", grace), zap.Int64("connections", open))
	}
	<-s.done
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return s.serveE
}

// conns counts the server's open connections, for the shutdown log.
type conns struct{ open atomic.Int64 }

func (c *conns) track(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		c.open.Add(1)
	case http.StateClosed, http.StateHijacked:
		c.open.Add(-1)
	}
}

// WriteJSON writes v as indented JSON with status code. <, > and & are
// written as they are (a mail address in an error stays readable), not as
// \u003c escapes: the admin API is JSON, never embedded in HTML.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Params are what the admin module takes from the graph.
type Params struct {
	fx.In
	Config     Config
	Log        *zap.Logger
	Info       StatusInfo
	Components *lifecycle.Registry
	Health     *health.Registry
	Routes     []Route `group:"admin.routes"`
	// Level, when the graph provides one (platform/log does), is served
	// at GET and PUT LogLevelPath.
	Level     zap.AtomicLevel `optional:"true"`
	Lifecycle fx.Lifecycle
}

// New builds the server and ties it to the fx lifecycle.
func New(p Params) (*Server, error) {
	routes := p.Routes
	if p.Level != (zap.AtomicLevel{}) {
		routes = append(append([]Route(nil), routes...), LogLevelRoutes(p.Level, p.Log)...)
	}
	log := p.Log
	if log != nil {
		log = log.Named("admin")
	}
	s, err := NewServer(p.Config, log, p.Info, p.Components, p.Health, routes)
	if err != nil {
		return nil, err
	}
	p.Lifecycle.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop})
	return s, nil
}

// Module provides the admin *Server and starts it with the host.
var Module = fx.Module("admin", fx.Provide(New))
