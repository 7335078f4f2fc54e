// Package loadgen is a synthetic workload for the host: a source that emits
// a configured number of tasks at start and a handler that (optionally)
// records the id of every task it handles in a file, and can be told to
// fail attempts (fail_first, dead_every) and to record every attempt it
// ran (attempt_file). It exists to measure
// the runtime end to end and to prove durability from outside the process
// (kill the host midway, restart it, count what the record file holds), so
// it is as plain as a real application module: a route, a source, a
// config section.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// Section is the configuration section of the module.
const Section = "loadgen"

// Kind is the task kind the source emits and the handler handles.
const Kind = "loadgen.task"

// Config is the "loadgen" section.
type Config struct {
	// Count is how many tasks the source emits when the host starts.
	// Zero emits none (the host only consumes what is already queued).
	// Default 0.
	Count int `koanf:"count"`
	// Batch is how many tasks one Emit call carries. Default 500.
	Batch int `koanf:"batch"`
	// Queue is the queue the tasks go to. Default "loadgen".
	Queue string `koanf:"queue"`
	// PayloadBytes is the size of each task's payload. Default 0.
	PayloadBytes int `koanf:"payload_bytes"`
	// Work is how long the handler takes per task (it sleeps, honouring
	// cancellation). Default 0.
	Work time.Duration `koanf:"work"`
	// Consume registers the handler (and so a pool for Queue) in this
	// host. False makes a producer-only host: its tasks are handled by
	// other hosts sharing the queue backend. Default true.
	Consume bool `koanf:"consume"`
	// RecordFile, when set, is a file the handler appends each handled
	// task's id to (one per line) before the task is acked.
	RecordFile string `koanf:"record_file"`
	// AttemptFile, when set, is a file the handler appends every run of a
	// task of Kind to, as "<id> <attempt> ok|fail" (one per line), before
	// it returns: the attempts the handler really ran, as the runtime
	// numbered them (task.Task.Attempt).
	AttemptFile string `koanf:"attempt_file"`
	// FailFirst makes the handler fail the first FailFirst attempts of
	// every task of Kind (a plain error, so the pool retries it) and
	// succeed from the next one on. Default 0.
	FailFirst int `koanf:"fail_first"`
	// DeadEvery makes the handler fail every attempt of every DeadEvery-th
	// task (those whose index, ID(i), is a multiple of it), so that each
	// of them ends in the dead letter once its attempts are used.
	// Default 0 (none).
	DeadEvery int `koanf:"dead_every"`
	// Every, when set, adds the schedule TickSchedule: a task of kind
	// TickKind on Queue at every multiple of Every, enqueued once per
	// cluster (see source.Every), which the handler records as
	// "tick@<due time>" in RecordFile. Default 0 (none); at least 1s.
	Every time.Duration `koanf:"every"`
}

// The schedule Config.Every adds.
const (
	TickSchedule = "loadgen/tick"
	TickKind     = "loadgen.tick"
)

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config { return Config{Batch: 500, Queue: "loadgen", Consume: true} }

// Validate checks the section.
func (c Config) Validate() error {
	var ps config.Problems
	if c.Count < 0 {
		ps.Add("count", "must not be negative (got %d)", c.Count)
	}
	if c.Batch < 1 {
		ps.Add("batch", "must be at least 1 (got %d)", c.Batch)
	}
	if c.Queue == "" {
		ps.Add("queue", "must not be empty")
	}
	if c.PayloadBytes < 0 {
		ps.Add("payload_bytes", "must not be negative (got %d)", c.PayloadBytes)
	}
	if c.Work < 0 {
		ps.Add("work", "must not be negative (got %s)", c.Work)
	}
	if c.FailFirst < 0 {
		ps.Add("fail_first", "must not be negative (got %d)", c.FailFirst)
	}
	if c.DeadEvery < 0 {
		ps.Add("dead_every", "must not be negative (got %d)", c.DeadEvery)
	}
	if c.Every != 0 && c.Every < time.Second {
		ps.Add("every", "must be 0 (no schedule) or at least 1s (got %s)", c.Every)
	}
	return ps.Err()
}

// ID returns the id (and de-duplication key) of the i-th task: the same on
// every run, so a restarted source's tasks are recognised.
func ID(i int) string { return fmt.Sprintf("lg-%07d", i) }

// Source emits Config.Count tasks, then waits for its context to end.
type Source struct {
	cfg Config
	log *zap.Logger
}

// NewSource returns the module's source.
func NewSource(cfg Config, log *zap.Logger) *Source {
	if log == nil {
		log = zap.NewNop()
	}
	return &Source{cfg: cfg, log: log}
}

// Name identifies the source.
func (s *Source) Name() string { return "loadgen" }

// Run emits the tasks in batches (blocking while the queue is full) and
// logs "loadgen emitted" with the count once all are accepted.
func (s *Source) Run(ctx context.Context, emit source.Emitter) error {
	payload := make([]byte, s.cfg.PayloadBytes)
	start := time.Now()
	batch := make([]*task.Task, 0, s.cfg.Batch)
	for i := 0; i < s.cfg.Count; {
		batch = batch[:0]
		for ; i < s.cfg.Count && len(batch) < s.cfg.Batch; i++ {
			batch = append(batch, &task.Task{ID: ID(i), Key: ID(i), Kind: Kind, Queue: s.cfg.Queue, Payload: payload})
		}
		if err := emit.Emit(ctx, batch...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("loadgen: emit up to task %d: %w", i, err)
		}
	}
	if s.cfg.Count > 0 {
		s.log.Info("loadgen emitted", zap.Int("tasks", s.cfg.Count), zap.Duration("took", time.Since(start)))
	}
	<-ctx.Done()
	return nil
}

// Index returns i for id ID(i), and false for any other id.
func Index(id string) (int, bool) {
	digits, ok := strings.CutPrefix(id, "lg-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(digits)
	if err != nil || i < 0 || ID(i) != id {
		return 0, false
	}
	return i, true
}

// Recorder is the handler: it waits Config.Work, then fails the attempt
// as Config.FailFirst and Config.DeadEvery ask, or appends the task's id
// to the record file (when configured). Each run of a task of Kind is
// appended to the attempt file (when configured) first.
type Recorder struct {
	work      time.Duration
	path      string
	attempts  string
	failFirst int
	deadEvery int
	mu        sync.Mutex
	f         *os.File
	af        *os.File
}

// NewRecorder returns the handler for cfg. It opens nothing: Open opens
// the record and attempt files (the module calls it on start), so
// building the host's graph (`host config validate`) writes no file.
func NewRecorder(cfg Config) *Recorder {
	return &Recorder{work: cfg.Work, path: cfg.RecordFile, attempts: cfg.AttemptFile,
		failFirst: cfg.FailFirst, deadEvery: cfg.DeadEvery}
}

// Open opens the record and attempt files for appending, creating them,
// when configured. Close them when done.
func (r *Recorder) Open(context.Context) error {
	open := func(path string) (*os.File, error) {
		if path == "" {
			return nil, nil
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("loadgen: open %s: %w", path, err)
		}
		return f, nil
	}
	f, err := open(r.path)
	if err != nil {
		return err
	}
	af, err := open(r.attempts)
	if err != nil {
		if f != nil {
			_ = f.Close()
		}
		return err
	}
	r.mu.Lock()
	r.f, r.af = f, af
	r.mu.Unlock()
	return nil
}

// fails reports whether this attempt of t is to fail, and why.
func (r *Recorder) fails(t *task.Task) error {
	if t.Kind != Kind {
		return nil
	}
	if i, ok := Index(t.ID); ok && r.deadEvery > 0 && i%r.deadEvery == 0 {
		return fmt.Errorf("loadgen: task %s fails every attempt (dead_every %d)", t.ID, r.deadEvery)
	}
	if t.Attempt <= r.failFirst {
		return fmt.Errorf("loadgen: task %s fails attempt %d (fail_first %d)", t.ID, t.Attempt, r.failFirst)
	}
	return nil
}

// Handle implements task.Handler.
func (r *Recorder) Handle(ctx context.Context, t *task.Task) error {
	if r.work > 0 {
		tm := time.NewTimer(r.work)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return ctx.Err()
		}
	}
	failed := r.fails(t)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.attempts != "" && t.Kind == Kind {
		if r.af == nil {
			return fmt.Errorf("loadgen: record attempt of %s: the attempt file is not open", t.ID)
		}
		verdict := "ok"
		if failed != nil {
			verdict = "fail"
		}
		if _, err := fmt.Fprintf(r.af, "%s %d %s\n", t.ID, t.Attempt, verdict); err != nil {
			return fmt.Errorf("loadgen: record attempt of %s: %w", t.ID, err)
		}
	}
	if failed != nil {
		return failed
	}
	if r.path == "" {
		return nil
	}
	id := t.ID
	if t.Kind == TickKind {
		id = "tick@" + t.Header(source.HeaderScheduledAt)
	}
	if r.f == nil {
		return fmt.Errorf("loadgen: record %s: the record file is not open", t.ID)
	}
	line := make([]byte, 0, len(id)+1)
	line = append(append(line, id...), '\n')
	if _, err := r.f.Write(line); err != nil {
		return fmt.Errorf("loadgen: record %s: %w", t.ID, err)
	}
	return nil
}

// Close closes the record and attempt files.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, f := range []**os.File{&r.f, &r.af} {
		if *f != nil {
			errs = append(errs, (*f).Close())
			*f = nil
		}
	}
	return errors.Join(errs...)
}

// Module is the loadgen application: the "loadgen" section, the route of
// Kind on Config.Queue with the Recorder, and the Source.
var Module = fx.Module("loadgen",
	config.Provide(Section, DefaultConfig()),
	fx.Provide(
		fx.Private,
		func(lc fx.Lifecycle, cfg Config) *Recorder {
			r := NewRecorder(cfg)
			// Appended before the pool that uses the recorder: opened
			// before it starts, closed after it drained.
			lc.Append(fx.Hook{OnStart: r.Open, OnStop: func(context.Context) error { return r.Close() }})
			return r
		},
	),
	fx.Provide(
		fx.Annotate(func(cfg Config, r *Recorder) []task.Route {
			if !cfg.Consume {
				return nil
			}
			routes := []task.Route{{Kind: Kind, Queue: cfg.Queue, Handler: r, Name: "loadgen"}}
			if cfg.Every > 0 {
				routes = append(routes, task.Route{Kind: TickKind, Queue: cfg.Queue, Handler: r, Name: "loadgen/tick"})
			}
			return routes
		}, fx.ResultTags(`group:"`+worker.RoutesGroup+`,flatten"`)),
		source.AsSource(func(cfg Config, log *zap.Logger) *Source { return NewSource(cfg, log.Named("loadgen")) }),
		fx.Annotate(func(cfg Config) ([]source.Source, error) {
			if cfg.Every == 0 {
				return nil, nil
			}
			s, err := NewTicks(cfg)
			if err != nil {
				return nil, err
			}
			return []source.Source{s}, nil
		}, fx.ResultTags(`group:"`+source.SourcesGroup+`,flatten"`)),
	),
)

// NewTicks returns the schedule TickSchedule of cfg (Every must be set):
// one task of TickKind on cfg.Queue per due time.
func NewTicks(cfg Config) (*source.Schedule, error) {
	return source.Every(TickSchedule, cfg.Every, TickKind, source.WithTask(func(time.Time) (*task.Task, error) {
		return &task.Task{Kind: TickKind, Queue: cfg.Queue}, nil
	}))
}
