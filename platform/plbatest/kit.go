package plbatest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// base is the kit's configuration under the test's: the memory backend,
// the admin server on a free loopback port, no metrics exporters.
const base = `admin:
  listen: 127.0.0.1:0
queue:
  backend: memory
telemetry:
  metrics:
    enabled: false
`

// TB is what the kit needs of a test: *testing.T and *testing.B are TBs.
type TB interface {
	Helper()
	Name() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Fail()
	FailNow()
	Failed() bool
	Cleanup(func())
}

// Option configures Start.
type Option func(*settings)

type settings struct {
	yaml     []string
	sets     []string
	level    zapcore.Level
	timeout  time.Duration
	extra    []fx.Option
	sections []func(TB) (string, any)
}

// Config layers a YAML document over the kit's configuration (later
// Config options win), as a --config file does in the host.
func Config(yaml string) Option { return func(s *settings) { s.yaml = append(s.yaml, yaml) } }

// Set overrides single keys, as the host's --set does: Set("log.level=debug").
func Set(kv ...string) Option { return func(s *settings) { s.sets = append(s.sets, kv...) } }

// Section gives the module its configuration section as the value v of
// the section's declared type (config.Declare, config.Provide), instead
// of YAML: a layer over Config and Set. v is decoded and validated like
// any layer. The test fails when no section, or more than one, is
// declared with T.
func Section[T any](v T) Option {
	return func(s *settings) {
		s.sections = append(s.sections, func(tb TB) (string, any) {
			names := config.DefaultRegistry.SectionsOf(v)
			switch len(names) {
			case 0:
				tb.Fatalf("plbatest: Section[%T]: no configuration section is declared with this type", v)
			case 1:
			default:
				tb.Fatalf("plbatest: Section[%T]: sections %s have this type: set one with plbatest.Config or plbatest.Set", v, strings.Join(names, ", "))
			}
			return names[0], v
		})
	}
}

// LogLevel sets the level of the log lines the test prints (through
// t.Log). Default warn.
func LogLevel(l zapcore.Level) Option { return func(s *settings) { s.level = l } }

// Timeout bounds RunUntilIdle in real time. Default 30s.
func Timeout(d time.Duration) Option { return func(s *settings) { s.timeout = d } }

// With adds fx options to the graph (fakes, fx.Decorate, fx.Populate).
func With(opts ...fx.Option) Option { return func(s *settings) { s.extra = append(s.extra, opts...) } }

// Kit is a started module on the platform. Its methods fail the test on
// error; use them from the test's goroutine.
type Kit struct {
	t        TB
	app      *fxtest.App
	clock    *Clock
	backend  *memory.Backend
	enqueuer task.Enqueuer
	rec      *recorder
	timeout  time.Duration
}

// Start builds and starts module with the platform on the memory backend,
// under fxtest; the test's cleanup stops it.
func Start(t TB, module fx.Option, opts ...Option) *Kit {
	t.Helper()
	s := &settings{level: zapcore.WarnLevel, timeout: 30 * time.Second}
	for _, o := range opts {
		o(s)
	}
	cfg, err := load(t, s)
	if err != nil {
		t.Fatalf("plbatest: configuration: %v", err)
	}
	k := &Kit{t: t, clock: &Clock{}, rec: newRecorder(), timeout: s.timeout}
	var backend queue.Backend
	graph := []fx.Option{
		platform.Module(cfg, platform.Info{Version: "plbatest", Commit: "none"}),
		module,
		fx.Decorate(fx.Annotate(func(c platform.QueueConfig) platform.QueueConfig {
			c.Backend = platform.BackendMemory
			c.Memory.Now = k.clock.Now
			return c
		}, fx.ParamTags(config.Tag(platform.QueueSection)), fx.ResultTags(config.Tag(platform.QueueSection)))),
		fx.Decorate(func(b queue.Backend) (queue.Backend, error) {
			mb, ok := b.(*memory.Backend)
			if !ok {
				return nil, fmt.Errorf("plbatest: the queue backend is %T, not the memory backend", b)
			}
			k.backend = mb
			return &clockBackend{Backend: mb, clock: k.clock, rec: k.rec}, nil
		}),
		fx.Decorate(func(o task.Observer) task.Observer {
			k.rec.inner = o
			return k.rec
		}),
		fx.Decorate(func() *zap.Logger { return zaptest.NewLogger(t, zaptest.Level(s.level)) }),
		fx.Populate(&k.enqueuer, &backend),
	}
	graph = append(graph, s.extra...)
	k.app = fxtest.New(t, graph...)
	k.app.RequireStart()
	t.Cleanup(k.app.RequireStop)
	if k.rec.inner == nil {
		t.Fatalf("plbatest: the platform provided no task.Observer")
	}
	return k
}

// load reads the kit's configuration with the test's layers on top, the
// process environment ignored.
func load(t TB, s *settings) (*config.Config, error) {
	values := map[string]any{}
	for _, sec := range s.sections {
		name, v := sec(t)
		values[name] = v
	}
	files := map[string][]byte{"plbatest defaults": []byte(base)}
	names := []string{"plbatest defaults"}
	for i, y := range s.yaml {
		name := fmt.Sprintf("plbatest.Config #%d", i+1)
		files[name] = []byte(y)
		names = append(names, name)
	}
	return config.Load(config.Options{
		Files:   names,
		Environ: []string{},
		Sets:    s.sets,
		Values:  values,
		ReadFile: func(name string) ([]byte, error) {
			if b, ok := files[name]; ok {
				return b, nil
			}
			return config.ReadFile(name) // secret files
		},
	})
}

// Clock returns the kit's clock (set NotBefore from its Now).
func (k *Kit) Clock() *Clock { return k.clock }

// Enqueuer returns the platform's task.Enqueuer.
func (k *Kit) Enqueuer() task.Enqueuer { return k.enqueuer }

// Backend returns the memory backend (for its dead letters, stats).
func (k *Kit) Backend() *memory.Backend { return k.backend }

// App returns the fxtest application.
func (k *Kit) App() *fxtest.App { return k.app }

// Enqueue enqueues tasks through the platform's producer, as a handler or
// a source would; the test fails if the backend refuses them.
func (k *Kit) Enqueue(tasks ...*task.Task) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	defer cancel()
	if err := k.enqueuer.Enqueue(ctx, tasks...); err != nil {
		k.t.Fatalf("plbatest: enqueue: %v", err)
	}
}
