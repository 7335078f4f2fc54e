package telemetry_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/plba/plba/platform/telemetry"
)

// traceCollector is an OTLP/gRPC trace service that keeps what it got.
type traceCollector struct {
	coltrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	names []string
	keys  []string
}

func (c *traceCollector) Export(ctx context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys = append(c.keys, md.Get("api-key")...)
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.names = append(c.names, s.GetName())
			}
		}
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

// TestOTLPGRPCExport sends spans over OTLP/gRPC without TLS (insecure) to a
// collector on loopback, with the configured headers as gRPC metadata.
func TestOTLPGRPCExport(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	col := &traceCollector{}
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, col)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Stop()
		require.NoError(t, <-served)
	}()

	cfg := telemetry.Config{}
	cfg.Traces.Exporter = telemetry.ExporterOTLP
	cfg.Traces.Sampler = telemetry.SamplerAlways
	cfg.Traces.OTLP = telemetry.OTLPConfig{Protocol: telemetry.ProtocolGRPC, Endpoint: ln.Addr().String(), Insecure: true,
		Headers: map[string]string{"api-key": "s3cret"}, Timeout: 5 * time.Second}
	cfg.Metrics.Enabled = telemetry.Bool(false)
	tel, err := telemetry.New(context.Background(), cfg)
	require.NoError(t, err)
	_, s := tel.TracerProvider().Tracer("test").Start(context.Background(), "grpc export")
	s.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, tel.Shutdown(ctx))

	col.mu.Lock()
	defer col.mu.Unlock()
	require.Equal(t, []string{"grpc export"}, col.names)
	require.Equal(t, []string{"s3cret"}, col.keys)
}
