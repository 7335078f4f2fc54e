// Package shipments is an example plba application: the warehouse posts
// shipment events to a webhook, each becomes a typed task that sends the
// customer a shipping notice through a notification service (and, some
// days later, a feedback request); a scheduled source sends a digest of
// the notices every period; a readiness check watches the notification
// service.
package shipments

import (
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
	fx.Provide(source.AsSources(digestSource), admin.AsRoutes(demoSink)),
)

// digestSource is the digest's schedule: one digest task per due time,
// enqueued once per cluster (the runtime runs a schedule on one host at a
// time, and each due time's task is keyed by it). None when the digest is
// disabled.
func digestSource(cfg Config) ([]source.Source, error) {
	if !cfg.Digest.Enabled {
		return nil, nil
	}
	s, err := cfg.Digest.schedule()
	if err != nil {
		return nil, err
	}
	return []source.Source{s}, nil
}

// schedule builds the digest's schedule from the section (Cron in
// TimeZone, else Every).
func (d DigestConfig) schedule() (*source.Schedule, error) {
	loc, err := time.LoadLocation(d.TimeZone)
	if err != nil {
		return nil, err
	}
	missed := source.SkipMissed
	if d.CatchUp {
		missed = source.CatchUpOnce
	}
	opts := []source.ScheduleOption{
		source.InLocation(loc), source.OnMissed(missed),
		source.WithTask(func(due time.Time) (*task.Task, error) {
			return Digest.New(DigestArgs{Period: due.UTC().Format(time.RFC3339)})
		}),
	}
	if d.Cron != "" {
		return source.Cron("shipments/digest", d.Cron, Digest.Name(), opts...)
	}
	return source.Every("shipments/digest", d.Every, Digest.Name(), opts...)
}

// demoSink serves the demo notification service when configured.
func demoSink(cfg Config, log *zap.Logger) []admin.Route {
	if !cfg.DemoSink {
		return nil
	}
	return []admin.Route{sink(log.Named("shipments"))}
}
