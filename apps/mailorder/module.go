package mailorder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/apps/mailorder/domain"
	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/ui"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// Module is the mailorder application: the "mailorder" section, the *App
// (its running parts, for tools and tests), the order
// store (component "mailorder/store", readiness check on it), the IMAP
// mailbox source with its readiness check, the route of Kind on
// Config.Queue, the admin endpoint StatusPath and, with demo.enabled, the
// embedded demo mailbox. It needs the platform (platform.Module): a
// *config.Config, a *zap.Logger, a *lifecycle.Registry, a queue.Backend
// and the task runtime; the admin server is optional.
//
// Start and stop order follows the dependencies: the demo server starts
// while the graph is built (the source's address is its port); the store
// opens on start, before the pools; on stop the source stops first, the
// pools drain, then the store, the source's completion connection and the
// demo server close, in that order (all after the pools drained).
var Module = fx.Module("mailorder",
	config.Provide(Section, DefaultConfig()), // declares the section and provides Config
	fx.Provide(
		fx.Private,
		newDemo,
		newStore,
		newService,
		newSource,
	),
	fx.Provide(
		newApp,
		worker.AsRoute(newRoute),
		source.AsSource(func(s *imap.Source) *imap.Source { return s }),
		health.AsCheck(func(a *App) health.Check {
			return health.Check{Name: "mailorder/store", Func: a.store.Ping, Gating: true}
		}),
		health.AsCheck(imap.HealthCheck),
		admin.AsRoute(statusRoute),
		ui.AsPage(ordersPage),
	),
	fx.Invoke(announce),
)

type demoParams struct {
	fx.In

	Config    Config
	Lifecycle fx.Lifecycle
	Log       *zap.Logger `optional:"true"`
}

// newDemo starts the demo mailbox when enabled (nil otherwise). It starts
// while the graph is built, because the source's configuration needs its
// address; it closes on stop, after the source.
func newDemo(p demoParams) (*Demo, error) {
	if !p.Config.Demo.Enabled {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := StartDemo(ctx, p.Config.Demo, logger(p.Log).Named("demo-imap"))
	if err != nil {
		return nil, err
	}
	p.Lifecycle.Append(fx.StopHook(d.Close))
	return d, nil
}

type storeParams struct {
	fx.In

	Config     Config
	Lifecycle  fx.Lifecycle
	Components *lifecycle.Registry
}

// newStore registers the store as the component "mailorder/store": opened
// (migrations applied) on start, before the pools that use it start, and
// closed on stop after they drained. Building the graph opens nothing.
// It never moves to failed after its start (lifecycle.NeverFails): a
// store that stops answering shows in the gating check "mailorder/store"
// (not ready), one that does not open fails the host's start; so the
// host refuses a lifecycle.policies entry for it, which would do nothing.
func newStore(p storeParams) (Store, error) {
	s := &startedStore{cfg: p.Config.Store}
	if _, err := p.Components.Track(p.Lifecycle, "mailorder/store", lifecycle.StopHost, s.open,
		func(context.Context) error { return s.Close() }, lifecycle.NeverFails()); err != nil {
		return nil, err
	}
	return s, nil
}

func newService(cfg Config, s Store) (*domain.Service, error) {
	return domain.NewService(s, cfg.Limits)
}

type sourceParams struct {
	fx.In

	Config    Config
	Demo      *Demo
	Lifecycle fx.Lifecycle
	Log       *zap.Logger          `optional:"true"`
	Backend   queue.Backend        `optional:"true"`
	Meter     metric.MeterProvider `optional:"true"`
}

// newSource builds the IMAP source from Config.Mailbox (pointed at the
// demo server when it runs); its completion connection closes on stop
// after the pools drained. On start (the backend started before it) it
// checks mailbox.max_message_size against what the queue backend can
// carry, and fails naming mailorder.mailbox.max_message_size.
func newSource(p sourceParams) (*imap.Source, error) {
	src, err := imap.New(imap.Params{Config: p.Config.source(p.Demo.addr()), Logger: logger(p.Log), Lifecycle: p.Lifecycle,
		Meter: p.Meter})
	if err != nil {
		return nil, err
	}
	mp, ok := p.Backend.(interface{ MaxPayload() int64 })
	if !ok {
		return src, nil
	}
	p.Lifecycle.Append(fx.StartHook(func() error {
		n := mp.MaxPayload()
		src.SetQueueMaxPayload(n)
		var ce *imap.ConfigError
		if err := imap.CheckQueueLimit(src.Config(), n); errors.As(err, &ce) {
			return fmt.Errorf("mailorder: %w", config.Problem{Key: Section + ".mailbox." + ce.Key, Msg: ce.Msg})
		}
		return nil
	}))
	return src, nil
}

type appParams struct {
	fx.In

	Config  Config
	Store   Store
	Source  *imap.Source
	Backend queue.Backend `optional:"true"`
	Demo    *Demo
}

func newApp(p appParams) *App {
	return &App{cfg: p.Config, store: p.Store, src: p.Source, backend: p.Backend, demo: p.Demo}
}

func newRoute(cfg Config, svc *domain.Service, log *zap.Logger) task.Route {
	return task.Route{Kind: Kind, Queue: cfg.Queue, Handler: NewHandler(svc, logger(log).Named("mailorder")), Name: "mailorder"}
}

type announceParams struct {
	fx.In

	Lifecycle fx.Lifecycle
	App       *App
	Log       *zap.Logger   `optional:"true"`
	Admin     *admin.Server `optional:"true"`
}

// announce logs, once everything started, where the mail comes from,
// where the orders go and where to look; with the demo, it also logs a
// summary once every seeded mail is processed.
func announce(p announceParams) {
	log := logger(p.Log).Named("mailorder")
	a := p.App
	var (
		stop = make(chan struct{})
		wg   sync.WaitGroup
	)
	p.Lifecycle.Append(fx.Hook{
		OnStart: func(context.Context) error {
			sc := a.src.Config()
			where := "GET " + StatusPath + " on the admin server"
			if p.Admin != nil && p.Admin.Addr() != "" {
				where = "http://" + p.Admin.Addr() + StatusPath
			}
			fields := []zap.Field{
				zap.String("imap", net.JoinHostPort(sc.Host, strconv.Itoa(sc.Port))), zap.String("mailbox", sc.Mailbox),
				zap.String("mode", string(sc.Mode)), zap.String("queue", a.cfg.Queue),
				zap.String("store", storeWhere(a.cfg.Store)), zap.String("status", where),
			}
			if a.demo != nil {
				st := a.demo.Seeded()
				fields = append(fields, zap.Int("demo_mails", st.Mails), zap.Int("demo_valid", st.Valid),
					zap.Int("demo_invalid", st.Invalid), zap.String("demo_user", a.cfg.Demo.Username))
				log.Info("mailorder demo: sample order mails are in the embedded IMAP server; valid ones become orders, the rest move to the failed folder with their reason in the status", fields...)
				wg.Add(1)
				go func() { // owned by this hook pair: stop ends it
					defer wg.Done()
					watchDemo(a, log, where, stop)
				}()
			} else {
				log.Info("mailorder: watching the mailbox for order mails", fields...)
			}
			return nil
		},
		OnStop: func(context.Context) error {
			close(stop)
			wg.Wait()
			return nil
		},
	})
}

// watchDemo logs one summary when every seeded demo mail has completed.
func watchDemo(a *App, log *zap.Logger, where string, stop <-chan struct{}) {
	want := uint64(a.demo.Seeded().Mails)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		st := a.src.Status()
		if st.CompletedOK+st.CompletedFailed < want {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, err := a.store.Count(ctx)
		cancel()
		if err != nil {
			log.Warn("mailorder demo: cannot count orders", zap.Error(err))
			return
		}
		log.Info("mailorder demo: every sample mail processed",
			zap.Uint64("mails_ok", st.CompletedOK), zap.Uint64("mails_failed", st.CompletedFailed),
			zap.Int("orders_stored", n), zap.String("failed_folder", deref(a.src.Config().OnFailure.MoveTo)),
			zap.String("details", where))
		return
	}
}

func storeWhere(c StoreConfig) string {
	if c.Driver == DriverPostgres {
		return "postgres (schema " + postgresSchema(c.Postgres) + ")"
	}
	return "sqlite " + c.SQLite.Path
}

func postgresSchema(c PostgresConfig) string {
	if c.Schema == "" {
		return "public"
	}
	return c.Schema
}

func logger(l *zap.Logger) *zap.Logger {
	if l == nil {
		return zap.NewNop()
	}
	return l
}
