// Package shipments is an example plba application: the warehouse posts
// shipment events to a webhook, each becomes a typed task that sends the
// customer a shipping notice through a notification service (and, some
// days later, a feedback request); a scheduled source sends a digest of
// the notices every period; a readiness check watches the notification
// service.
package shipments

import (
	"context"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// Module is the application: the "shipments" section, the webhook (on the
// admin server), the three routes, the digest source and the readiness
// check on the notification service.
var Module = fx.Module("shipments",
	config.Provide(Section, DefaultConfig()), // declares the section and provides Config
	fx.Provide(
		NewNotifier,
		func() *Ledger { return &Ledger{} },
		func(cfg Config, n *Notifier, l *Ledger, e task.Enqueuer) *handlers {
			return &handlers{cfg: cfg, notifier: n, ledger: l, enqueuer: e, now: time.Now}
		},
		worker.AsRoute(func(h *handlers) task.Route { return Notice.Handle(h.notice) }),
		worker.AsRoute(func(h *handlers) task.Route { return Feedback.Handle(h.feedback) }),
		worker.AsRoute(func(h *handlers) task.Route { return Digest.Handle(h.digest) }),
		admin.AsRoute(webhook),
		health.AsCheck(func(n *Notifier) health.Check {
			return health.Check{Name: "shipments/notification-service", Func: n.Check, Interval: 15 * time.Second, Gating: true}
		}),
	),
	fx.Provide(fx.Annotate(digestSource, fx.ResultTags(`group:"task.sources,flatten"`))),
	fx.Provide(fx.Annotate(demoSink, fx.ResultTags(`group:"admin.routes,flatten"`))),
)

// digestSource emits one digest task per period, keyed by the period so
// that replicas sharing the queue send one digest between them (while the
// first is queued). None when the digest is disabled.
func digestSource(cfg Config) []source.Source {
	if !cfg.Digest.Enabled {
		return nil
	}
	every := cfg.Digest.Every
	return []source.Source{source.Poll("shipments/digest", every, 0, func(ctx context.Context, emit source.Emitter) error {
		period := time.Now().UTC().Truncate(every)
		t, err := Digest.New(DigestArgs{Period: period.Format(time.RFC3339)})
		if err != nil {
			return err
		}
		t.Key = "digest/" + period.Format(time.RFC3339)
		return emit.Emit(ctx, t)
	})}
}

// demoSink serves the demo notification service when configured.
func demoSink(cfg Config, log *zap.Logger) []admin.Route {
	if !cfg.DemoSink {
		return nil
	}
	return []admin.Route{sink(log.Named("shipments"))}
}
