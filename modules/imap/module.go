package imap

import (
	"context"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/source"
)

// Params are New's dependencies.
type Params struct {
	fx.In
	// Config is the "imap" section.
	Config Config
	// Logger is optional; nil discards logs.
	Logger *zap.Logger `optional:"true"`
	// Lifecycle, when present, closes the source's completion connection on
	// stop (after the pools that complete tasks have drained).
	Lifecycle fx.Lifecycle `optional:"true"`
}

// New builds a Source from Params, for fx (see Module). Without fx, use
// NewSource.
func New(p Params) (*Source, error) {
	s, err := NewSource(p.Config, p.Logger)
	if err != nil {
		return nil, err
	}
	if p.Lifecycle != nil {
		p.Lifecycle.Append(fx.Hook{OnStop: func(context.Context) error { return s.Close() }})
	}
	return s, nil
}

// Module provides one mailbox source from the Config in the graph: the
// concrete *Source (for status), the same value as a source.Source in the
// "task.sources" group, and its readiness-gating check (Source.Check,
// named after the source) in the "health.checks" group. For several
// mailboxes, provide NewSource results yourself with source.AsSource and
// HealthCheck.
var Module = fx.Module("imap",
	fx.Provide(New),
	fx.Provide(
		source.AsSource(func(s *Source) *Source { return s }),
		health.AsCheck(HealthCheck),
	),
)

// HealthCheck is s's readiness-gating check: connected, and the last
// successful search younger than StaleAfter.
func HealthCheck(s *Source) health.Check {
	return health.Check{Name: s.Name(), Func: s.Check, Gating: true, Interval: 5 * time.Second}
}
