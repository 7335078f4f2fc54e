// Package admin is the host's control-plane HTTP server: health probes,
// status, metrics and the routes other parts of the platform contribute
// (queues, pools, dead letters). It listens on admin.listen, by default
// 127.0.0.1:8080, and shuts down gracefully within the stop timeout.
//
// Every route is behind authentication (bearer tokens for machines,
// users signing in to a session cookie with a CSRF token) and requires
// the Role it declares (empty: RoleViewer); what a route that needs
// credentials answers carries Cache-Control: no-store unless its handler
// sets its own. Without credentials the server is open only on a
// loopback address or with admin.auth.mode none, and says so at warn on
// every start. Every state-changing call is
// audited (Audit): in the log, in a ring served at AuditPath and, given an
// AuditStore, beyond the process.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
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
	// changes state needs at least RoleOperator: NewServer refuses a POST,
	// PUT, PATCH or DELETE route with RoleViewer (RolePublic is for one
	// with a check of its own, as a signed webhook).
	Role    Role
	Handler http.Handler
	// Page marks a GET route worth opening in a browser (an app's status
	// page, the metrics): the line that ends the start-up lists it.
	Page bool
	// Summary says in a line what the route answers: the OpenAPI document
	// of the admin API (platform/control) describes a contributed route
	// with it. Empty: a generic line naming the route as an
	// application's.
	Summary string
}

// AsRoute annotates a constructor returning a Route so its result joins the
// "admin.routes" group.
func AsRoute(ctor any) any {
	return fx.Annotate(ctor, fx.ResultTags(`group:"`+RoutesGroup+`"`))
}

// AsRoutes annotates a constructor returning []Route so that each of them
// joins the "admin.routes" group: for a module whose routes depend on its
// configuration (none when a feature is off).
func AsRoutes(ctor any) any {
	return fx.Annotate(ctor, fx.ResultTags(`group:"`+RoutesGroup+`,flatten"`))
}

// Server is the admin HTTP server.
type Server struct {
	cfg    Config
	log    *zap.Logger
	srv    *http.Server
	ln     net.Listener
	mux    *http.ServeMux
	routes []Route  // every route served on Listen, with its role
	pages  []string // the GET paths worth opening: status, health, contributed pages
	auth   *authenticator
	audit  *recorder
	certs  *certReloader // nil without TLS
	probes *probeServer  // nil without ProbesListen
	done   chan struct{}
	serveE error
	conns  conns
}

// Option configures a Server beyond its Config.
type Option func(*Server)

// WithAuditStore appends every audit entry to st as well, and fills the
// audit ring from it at start.
func WithAuditStore(st AuditStore) Option {
	return func(s *Server) { s.audit.store = st }
}

// Handler returns the server's handler (for tests with httptest, and the
// web UI's calls in process), without the listener's check of the Host
// header that authentication off on loopback adds.
func (s *Server) Handler() http.Handler { return s.mux }

// Addr returns the address the server listens on, once started.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// ProbesAddr returns the address of the probes listener, once started
// ("" without admin.probes_listen).
func (s *Server) ProbesAddr() string {
	if s.probes == nil {
		return ""
	}
	return s.probes.addr()
}

// Routes returns every route the server serves on its main listener
// (built in and contributed), sorted by pattern, each with the role it
// requires (never empty) and its summary, without its handler: what a
// test walks to check that every route is closed to whom it should be,
// and what the OpenAPI document describes.
func (s *Server) Routes() []Route {
	out := make([]Route, len(s.routes))
	for i, r := range s.routes {
		out[i] = Route{Pattern: r.Pattern, Role: r.Role, Page: r.Page, Summary: r.Summary}
	}
	return out
}

// NewServer validates cfg (a zero timeout takes its default) and builds
// the server's routes, each behind authentication, its role and the
// audit. It does not listen until Start.
//
// Built in: GET /livez and GET /readyz (public), GET /healthz and GET
// /admin/v1/status (viewer), the session routes (sign in and out:
// public; who am I: viewer) and GET /admin/v1/audit (viewer).
func NewServer(cfg Config, log *zap.Logger, info StatusInfo, comps *lifecycle.Registry, hr *health.Registry, routes []Route, opts ...Option) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{cfg: cfg, log: log, mux: http.NewServeMux(), audit: newRecorder(log, cfg.Audit), done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	a, err := newAuthenticator(cfg, log)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	s.auth = a
	if cfg.TLS.Enabled() {
		s.certs = newCertReloader(cfg.TLS, log)
	}
	all := append([]Route(nil), routes...)
	if hr != nil {
		hmux := http.NewServeMux()
		hr.Mount(hmux)
		all = append(all,
			Route{Pattern: "GET /livez", Role: RolePublic, Handler: hmux},
			Route{Pattern: "GET /readyz", Role: RolePublic, Handler: hmux},
			Route{Pattern: "GET /healthz", Role: RoleViewer, Handler: hmux})
	}
	all = append(all, Route{Pattern: "GET " + StatusPath, Role: RoleViewer, Handler: statusHandler(info, comps, hr)},
		auditRoute(s.audit.ring))
	all = append(all, s.sessionRoutes()...)
	sort.Slice(all, func(i, j int) bool { return all[i].Pattern < all[j].Pattern })
	for _, r := range all {
		if r.Role == "" {
			r.Role = RoleViewer
		}
		if !r.Role.Valid() {
			return nil, fmt.Errorf("admin: route %q: unknown role %q", r.Pattern, r.Role)
		}
		if r.Role == RoleViewer && changesState(r.Pattern) {
			return nil, fmt.Errorf("admin: route %q changes state: its role must be %s or %s (%s for a route with a check of its own, as a signed webhook), not %s", r.Pattern, RoleOperator, RoleAdmin, RolePublic, r.Role)
		}
		s.routes = append(s.routes, r)
		if err := register(s.mux, r.Pattern, s.guard(r.Pattern, r.Role, r.Handler)); err != nil {
			return nil, err
		}
	}
	if cfg.ProbesListen != "" {
		s.probes = newProbeServer(cfg, log, hr, routes)
	}
	s.pages = pagesOf(routes, hr != nil)
	return s, nil
}

// pagesOf returns the paths worth opening: the status, the health page
// when there is one, and the contributed routes marked Page, by pattern.
func pagesOf(routes []Route, health bool) []string {
	pages := []string{StatusPath}
	if health {
		pages = append(pages, "/healthz")
	}
	sorted := append([]Route(nil), routes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Pattern < sorted[j].Pattern })
	for _, r := range sorted {
		path, ok := strings.CutPrefix(r.Pattern, "GET ")
		if path = strings.TrimSuffix(path, "{$}"); ok && r.Page && !strings.Contains(path, "{") {
			pages = append(pages, path)
		}
	}
	return pages
}

func register(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil { // ServeMux panics on conflicting patterns
			err = fmt.Errorf("admin: route %q: %v", pattern, p)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// Start fills the audit ring from the audit store (when there is one),
// loads the TLS certificate (when configured), makes the decoy hash
// unknown sign-in names are checked against (auth.Decoy), listens (failing fast when
// the address is taken) and serves in goroutines owned by the server. It
// logs at warn when authentication is off.
func (s *Server) Start(ctx context.Context) error {
	if err := s.audit.start(ctx); err != nil {
		return err
	}
	if s.certs != nil {
		if err := s.certs.load(); err != nil {
			return err
		}
	}
	if s.auth.decoy != nil {
		// Made now, not by the first sign-in of an unknown name, which
		// would take twice a known name's time.
		s.auth.decoy.Prepare()
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("admin: listen %s: %w", s.cfg.Listen, err)
	}
	if s.probes != nil {
		if err := s.probes.start(); err != nil {
			_ = ln.Close()
			return err
		}
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.localOnly(s.mux),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ConnState:         s.conns.track,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	if s.certs != nil {
		s.srv.TLSConfig = s.certs.tlsConfig()
	}
	go func() {
		defer close(s.done)
		var err error
		if s.certs != nil {
			err = s.srv.ServeTLS(ln, "", "")
		} else {
			err = s.srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveE = err
			s.log.Error("admin server stopped", zap.Error(err))
		}
	}()
	// The admin server starts after everything its routes depend on (in
	// the host, last): this line ends the start-up with the pages to open.
	scheme := "http://"
	if s.certs != nil {
		scheme = "https://"
	}
	open := make([]string, len(s.pages))
	for i, p := range s.pages {
		open[i] = scheme + ln.Addr().String() + p
	}
	s.log.Info("admin server listening", zap.String("addr", ln.Addr().String()), zap.Bool("tls", s.certs != nil), zap.Strings("open", open))
	s.logAuth()
	return nil
}

// Stop shuts the server down: it stops listening, closes idle
// connections and waits for the requests in progress, for at most
// Config.ShutdownTimeout and at most half of what is left of ctx (the rest
// of the stop budget belongs to the pools and stores that stop after the
// admin server). Connections still open then (a client trickling a
// request body) are closed, and that is logged, not an error: the server
// has stopped either way. Stop returns an error only when ctx itself ended.
// The probes listener stops with it.
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
	if s.probes != nil {
		s.probes.stop(sctx)
	}
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
// \u003c escapes: the admin API is JSON, never embedded in HTML. The
// answer carries Cache-Control: no-store, as every answer of the admin
// API reflects live state (or refuses).
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // live state: a stored copy would tell what no longer holds
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
	Level zap.AtomicLevel `optional:"true"`
	// AuditStore, when the graph provides one (platform does on the
	// JetStream backend), keeps the audit beyond the process.
	AuditStore AuditStore `optional:"true"`
	Lifecycle  fx.Lifecycle
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
	var opts []Option
	if p.AuditStore != nil {
		opts = append(opts, WithAuditStore(p.AuditStore))
	}
	s, err := NewServer(p.Config, log, p.Info, p.Components, p.Health, routes, opts...)
	if err != nil {
		return nil, err
	}
	p.Lifecycle.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop})
	return s, nil
}

// Module provides the admin *Server and starts it with the host.
var Module = fx.Module("admin", fx.Provide(New))
