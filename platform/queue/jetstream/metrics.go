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
// full. Close unregisters it.
func (b *Backend) registerMetrics() error {
	m := otel.GetMeterProvider().Meter(MeterName)
	c, err := m.Int64ObservableCounter("plba.queue.dead_discarded", metric.WithUnit("{task}"),
		metric.WithDescription("Dead letters discarded because the dead-letter stream was full (queue.jetstream.dead.max_bytes, max_msgs)."))
	if err != nil {
		return fmt.Errorf("jetstream: metric: %w", err)
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(c, int64(b.deadDiscarded.Load()))
		return nil
	}, c)
	if err != nil {
		return fmt.Errorf("jetstream: metric: %w", err)
	}
	b.metricReg = reg
	return nil
}
