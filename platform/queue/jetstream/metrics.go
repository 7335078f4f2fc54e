package jetstream

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// MeterName is the instrumentation scope of the backend's instruments.
const MeterName = "github.com/plba/plba/platform/queue/jetstream"

// registerMetrics reports the backend's own counter through the global
// meter provider (the telemetry module sets it; instruments registered
// before that are forwarded once it is): plba.queue.claims_lost, its
// settlements that did not happen because another delivery of the same
// message was settled first (claim.go). Close unregisters it. The dead
// letters discarded to make room are no instrument of the backend's:
// Stats reports them per queue (DeadDiscarded), and the telemetry
// module exports them as plba.queue.dead_discarded.
func (b *Backend) registerMetrics() error {
	return b.registerMetricsOn(otel.GetMeterProvider().Meter(MeterName))
}

// registerMetricsOn is registerMetrics with meter m.
func (b *Backend) registerMetricsOn(m metric.Meter) error {
	lost, err := m.Int64ObservableCounter("plba.queue.claims_lost", metric.WithUnit("{task}"),
		metric.WithDescription("Settlements not made because the server had delivered the task twice at once and the other delivery was settled first."))
	if err != nil {
		return fmt.Errorf("jetstream: metric: %w", err)
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(lost, int64(b.claimsLost.Load()))
		return nil
	}, lost)
	if err != nil {
		return fmt.Errorf("jetstream: metric: %w", err)
	}
	b.metricReg = reg
	return nil
}
