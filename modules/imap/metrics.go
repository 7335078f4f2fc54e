package imap

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// meterName is the instrumentation scope of the source's instruments.
const meterName = "github.com/plba/plba/modules/imap"

// observe registers the source's completion counters with mp, read from
// Status on each collection.
func (s *Source) observe(mp metric.MeterProvider) error {
	m := mp.Meter(meterName)
	failures, err := m.Int64ObservableCounter("plba.imap.completion.failures", metric.WithUnit("{message}"),
		metric.WithDescription("Completions (flag, move) of failed batches, each retried until applied, by source."))
	if err != nil {
		return fmt.Errorf("imap: metrics: %w", err)
	}
	pending, err := m.Int64ObservableGauge("plba.imap.completion.pending", metric.WithUnit("{message}"),
		metric.WithDescription("Completions queued and not yet applied, by source."))
	if err != nil {
		return fmt.Errorf("imap: metrics: %w", err)
	}
	attrs := metric.WithAttributes(attribute.String("source", s.cfg.Name))
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := s.Status()
		o.ObserveInt64(failures, int64(st.CompletionFailures), attrs)
		o.ObserveInt64(pending, int64(st.CompletionsPending), attrs)
		return nil
	}, failures, pending)
	if err != nil {
		return fmt.Errorf("imap: metrics: %w", err)
	}
	return nil
}
