package telemetry_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/telemetry"
)

// TestACollectorDownLeavesTheBackendTimeToClose: with the OTLP collector
// down, the exporters wait out their timeouts at the stop (10 s each by
// default, the spans' and then the metrics'); Shutdown took all the time
// the stop had left, and fx runs no stop hook once that is gone, so the
// queue backend, whose hook comes after telemetry's, was never closed.
// Telemetry now takes at most half of what is left.
func TestACollectorDownLeavesTheBackendTimeToClose(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	cfg := telemetry.Config{}
	cfg.Traces.Exporter = telemetry.ExporterOTLP
	cfg.Traces.Sampler = telemetry.SamplerAlways
	cfg.Traces.OTLP = telemetry.OTLPConfig{Protocol: telemetry.ProtocolGRPC, Endpoint: down, Insecure: true}
	cfg.Metrics.Runtime = telemetry.Bool(false)
	cfg.Metrics.OTLP.Enabled = true
	cfg.Metrics.OTLP.OTLPConfig = telemetry.OTLPConfig{Protocol: telemetry.ProtocolGRPC, Endpoint: down, Insecure: true}

	closed := make(chan struct{})
	var tel *telemetry.Telemetry
	app := fx.New(
		fx.NopLogger,
		fx.Supply(cfg),
		// Built before telemetry (which reads its stats), as the queue
		// backend is: its stop hook runs after telemetry's.
		fx.Provide(func(lc fx.Lifecycle) telemetry.QueueStatser {
			lc.Append(fx.StopHook(func() { close(closed) }))
			return telemetry.QueueStatserFunc(func(context.Context) ([]queue.Stats, error) { return nil, nil })
		}),
		telemetry.Module,
		fx.Populate(&tel),
	)
	require.NoError(t, app.Err())
	startCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, app.Start(startCtx))
	_, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "last span")
	span.End()

	stopCtx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
	defer cancel()
	_ = app.Stop(stopCtx) // the exports fail: the collector is down
	select {
	case <-closed:
	default:
		t.Fatal("the backend's stop hook did not run: telemetry's shutdown took the whole stop timeout")
	}
}
