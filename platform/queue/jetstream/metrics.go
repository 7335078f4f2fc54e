package jetstream

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// MeterName is the instrumentation scope of the backend's instruments.
const MeterName = "github.com/plba/plba/platform/queue/jetstream"

// registerMetrics reports the backend's own counters through the global
// meter provider (the telemetry module sets it; instruments registered
// before that are forwarded once it is): plba.queue.dead_discarded, the
// dead letters this process discarded because the dead-letter stream was
// full, and plba.queue.claims_lost, its settlements that did not happen
// because another delivery of the same message was settled first
// (claim.go). Close unregisters them.
func (b *Backend) registerMetrics() error {
	m := otel.GetMeterProvider().Meter(MeterName)
	c, err := m.Int64ObservableCounter("plba.queue.dead_discarded", metric.WithUnit("{task}"),
		metric.WithDescription("Dead letters discarded because the dead-letter stream was full (queue.jetstream.dead.max_bytes, max_msgs)."))
	if err != nil {
		return fmt.Errorf("jetstream: metric: %w", err)
	}
	lost, err := m.Int64ObservableCounter("plba.queue.claims_lost", metric.WithUnit("{task}"),
		metric.WithDescription("Settlements not made because the server had delivered the task twice at once and the other delivery was settled first."))
	if err != nil {
		return fmt.Errorf("jetstream: metric: %w", err)
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(c, int64(b.deadDiscarded.Load()))
		o.ObserveInt64(lost, int64(b.claimsLost.Load()))
		return nil
	}, c, lost)
	if err != nil {
		return fmt.Errorf("jetstream: metric: %w", err)
	}
	b.metricReg = reg
	return nil
}
