package imap

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
)

// Params are New's dependencies.
type Params struct {
	fx.In
	// Config is the source's configuration (Module: the "imap" section).
	Config Config
	// Logger is optional; nil discards logs.
	Logger *zap.Logger `optional:"true"`
	// Lifecycle, when present, closes the source's completion connection on
	// stop (after the pools that complete tasks have drained) and, on
	// start, checks MaxMessageSize against Backend.
	Lifecycle fx.Lifecycle `optional:"true"`
	// Backend is the queue backend. When it has a MaxPayload method (the
	// JetStream backend), start fails with a *ConfigError on
	// max_message_size when a message of that size could not be carried
	// (CheckQueueLimit), and the source names the limit when the queue
	// refuses a message as too large.
	Backend queue.Backend `optional:"true"`
	// Meter, when present, gets the source's completion counters
	// (plba.imap.completion.failures, plba.imap.completion.pending).
	Meter metric.MeterProvider `optional:"true"`
}

// maxPayloader is a backend that knows the largest task it carries.
type maxPayloader interface{ MaxPayload() int64 }

// New builds a Source from Params, for fx (see Module). Without fx, use
// NewSource.
func New(p Params) (*Source, error) {
	s, err := NewSource(p.Config, p.Logger)
	if err != nil {
		return nil, err
	}
	if p.Meter != nil {
		if err := s.observe(p.Meter); err != nil {
			return nil, err
		}
	}
	if p.Lifecycle != nil {
		p.Lifecycle.Append(fx.Hook{
			OnStart: func(context.Context) error {
				mp, ok := p.Backend.(maxPayloader)
				if !ok {
					return nil
				}
				n := mp.MaxPayload()
				s.SetQueueMaxPayload(n)
				if err := CheckQueueLimit(s.cfg, n); err != nil {
					return fmt.Errorf("imap source %q: %w", s.cfg.Name, err)
				}
				return nil
			},
			OnStop: func(context.Context) error { return s.Close() },
		})
	}
	return s, nil
}

// Module is one mailbox source configured by the "imap" section (Section,
// declared with DefaultConfig; it needs the graph's *config.Config, which
// platform.Module provides): the concrete *Source (for status), the same
// value as a source.Source in the "task.sources" group, and its
// readiness-gating check (Source.Check, named after the source) in the
// "health.checks" group. For several mailboxes, or a mailbox inside an
// application's own section, provide New or NewSource results yourself
// with source.AsSource and HealthCheck.
var Module = fx.Module("imap",
	config.Provide(Section, DefaultConfig()), // declares "imap" and provides Config
	fx.Provide(New),
	fx.Provide(
		source.AsSource(func(s *Source) *Source { return s }),
		health.AsCheck(HealthCheck),
	),
)

// HealthCheck is s's readiness-gating check: connected, and the scan's
// last progress (a chunk of mail emitted, a scan ended) younger than
// StaleAfter (see Source.Check).
func HealthCheck(s *Source) health.Check {
	return health.Check{Name: s.Name(), Func: s.Check, Gating: true, Interval: 5 * time.Second}
}
