package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/health"
)

// MetricsPath is the path of the metrics route (platform/telemetry
// contributes it); the probes listener serves it without authentication.
const MetricsPath = "/metrics"

// probeServer is the listener of admin.probes_listen: /livez, /readyz,
// /healthz and /metrics, without authentication, for Kubernetes and
// Prometheus. It has the main listener's timeouts and no TLS.
type probeServer struct {
	cfg  Config
	log  *zap.Logger
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func newProbeServer(cfg Config, log *zap.Logger, hr *health.Registry, routes []Route) *probeServer {
	mux := http.NewServeMux()
	if hr != nil {
		hr.Mount(mux)
	}
	for _, r := range routes {
		if patternPath(r.Pattern) == MetricsPath {
			_ = register(mux, r.Pattern, r.Handler) // the main mux took the same pattern already
		}
	}
	return &probeServer{cfg: cfg, log: log, done: make(chan struct{}), srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          zap.NewStdLog(log.Named("probes")),
	}}
}

// patternPath is the path of a ServeMux pattern ("GET /metrics" -> "/metrics").
func patternPath(p string) string {
	if i := strings.IndexByte(p, ' '); i >= 0 {
		p = strings.TrimSpace(p[i+1:])
	}
	return p
}

func (p *probeServer) start() error {
	ln, err := net.Listen("tcp", p.cfg.ProbesListen)
	if err != nil {
		return fmt.Errorf("admin: listen %s (probes_listen): %w", p.cfg.ProbesListen, err)
	}
	p.ln = ln
	go func() {
		defer close(p.done)
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("admin probes server stopped", zap.Error(err))
		}
	}()
	p.log.Info("admin probes listening (no authentication)", zap.String("addr", ln.Addr().String()))
	return nil
}

func (p *probeServer) addr() string {
	if p.ln == nil {
		return ""
	}
	return p.ln.Addr().String()
}

func (p *probeServer) stop(ctx context.Context) {
	if p.ln == nil {
		return
	}
	if err := p.srv.Shutdown(ctx); err != nil {
		_ = p.srv.Close()
	}
	<-p.done
}
