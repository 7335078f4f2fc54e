package source

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/task"
)

// ErrCrashLoop is wrapped by the error a source's component shows while it
// is failed: it failed more than Config.CrashLoopLimit times within
// Config.CrashLoopWindow and has not recovered since. The supervisor keeps
// restarting it.
var ErrCrashLoop = errors.New("source: crash loop")

// ComponentPrefix prefixes the lifecycle component name of each source:
// "source/<name>".
const ComponentPrefix = "source/"

// Stats are the counters of one supervised source; they are also its
// lifecycle component's details.
type Stats struct {
	Name     string `json:"name"`
	Emitted  int64  `json:"emitted"`
	Errors   int64  `json:"errors"`
	Restarts int64  `json:"restarts"`
	// Paused reports whether an operator paused the source (Pause).
	Paused    bool   `json:"paused"`
	LastError string `json:"last_error,omitempty"`
	// Details is what the source reports of itself when it implements
	// Detailer (an IMAP mailbox: UIDVALIDITY, last UID, counts).
	Details any `json:"details,omitempty"`
}

// Detailer is implemented by a source that has a status of its own; the
// supervisor shows it in the source's component details (and so in
// /admin/v1/status) next to its counters. Details must be cheap and safe
// for concurrent use.
type Detailer interface {
	Details() any
}

// Supervisor runs every source in its own goroutine with its own context
// and restarts a source whose Run fails (returns an error or panics), for
// ever, with capped exponential back-off (see Config). Each source is the
// lifecycle component "source/<name>", registered lifecycle.External: it
// never drives liveness, and gates readiness only when named in
// Config.GateReadiness. Its state: running; degraded while it waits for a
// restart; failed past the crash-loop limit, through its restarts, until a
// restarted Run shows it works (default policy
// lifecycle.StayDegraded: a failed source does not stop the host unless
// configuration says so).
//
// A Run that returns nil before its context ends has finished: its
// component becomes Stopped and it is not restarted.
type Supervisor struct {
	cfg    Config
	log    *zap.Logger
	comps  *Completions
	obs    Observer
	runs   []*run
	mu     sync.Mutex
	cancel context.CancelFunc
	state  int // 0 new, 1 started, 2 stopped
	wg     sync.WaitGroup
}

type run struct {
	src      Source
	emit     *emitter
	comp     *lifecycle.Component
	log      *zap.Logger
	obs      *healthObserver
	errors   atomic.Int64
	restarts atomic.Int64
	lastErr  atomic.Pointer[string]

	// mu guards the recovery of a restarted Run, which a poll, an emit
	// or a timer may report while the supervisor's loop decides on its
	// failure.
	mu         sync.Mutex
	inRun      bool // a Run is in progress
	recovering bool // the Run in progress follows a failure: not yet shown to work
	worked     bool // the Run in progress (or the last) has shown it works
}

// working records that the source showed it works (a poll without error,
// an emit, or a Run up for a whole crash-loop window): a restarted Run
// that does has recovered, and its component is running again.
func (r *run) working() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.inRun {
		return
	}
	r.worked = true
	if r.recovering {
		r.recovering = false
		r.comp.Set(r.healthy(), nil)
		r.log.Info("source recovered")
	}
}

func (r *run) stats() Stats {
	s := Stats{Name: r.src.Name(), Emitted: r.emit.emitted.Load(), Errors: r.errors.Load(), Restarts: r.restarts.Load(), Paused: r.emit.gate.isPaused()}
	if p := r.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	if d, ok := r.src.(Detailer); ok {
		s.Details = d.Details()
	}
	return s
}

// NewSupervisor validates cfg (zero fields take defaults), registers one
// lifecycle component per source in reg (a private registry when nil) and
// returns a supervisor whose sources emit through enq. Sources are ordered
// by name; two sources with one name are an error wrapping
// ErrDuplicateSource. A nil log discards logs.
func NewSupervisor(cfg Config, enq task.Enqueuer, reg *lifecycle.Registry, log *zap.Logger, sources ...Source) (*Supervisor, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("source: config: %w", err)
	}
	if enq == nil {
		return nil, errors.New("source: supervisor needs an enqueuer")
	}
	if reg == nil {
		reg = lifecycle.NewRegistry(nil, nil)
	}
	if log == nil {
		log = zap.NewNop()
	}
	sorted := append([]Source(nil), sources...)
	for _, s := range sorted {
		if s == nil || s.Name() == "" {
			return nil, fmt.Errorf("%w: nil or unnamed source", ErrInvalidSource)
		}
	}
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name() < sorted[j].Name() })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Name() == sorted[i-1].Name() {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateSource, sorted[i].Name())
		}
	}
	comps, err := NewCompletions(sorted...)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(sorted))
	for i, src := range sorted {
		names[i] = src.Name()
	}
	if err := cfg.checkGates(names); err != nil {
		return nil, err
	}
	s := &Supervisor{cfg: cfg, log: log, comps: comps}
	for _, src := range sorted {
		gates := slices.Contains(cfg.GateReadiness, src.Name())
		comp, err := reg.Register(ComponentPrefix+src.Name(), lifecycle.StayDegraded, lifecycle.External(gates))
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", src.Name(), err)
		}
		r := &run{src: src, emit: NewEmitter(src, enq).(*emitter), comp: comp, log: log.With(zap.String("source", src.Name()))}
		r.obs = &healthObserver{next: nopObserver{}, run: r}
		r.emit.obs = r.obs
		comp.SetDetails(func() any { return r.stats() })
		s.runs = append(s.runs, r)
	}
	return s, nil
}

// SetObserver makes o see every source's polls (through Poll and StartPoll)
// and emits. Call it before Start.
func (s *Supervisor) SetObserver(o Observer) {
	if o == nil {
		o = nopObserver{}
	}
	s.obs = o
	for _, r := range s.runs {
		r.obs.next = o
	}
}

// Completions returns the registry of the supervised sources that
// implement Completer, for the worker pools.
func (s *Supervisor) Completions() *Completions { return s.comps }

// Stats returns the counters of every source, ordered by name.
func (s *Supervisor) Stats() []Stats {
	out := make([]Stats, len(s.runs))
	for i, r := range s.runs {
		out[i] = r.stats()
	}
	return out
}

// Start launches every source in its own goroutine and returns at once.
// The sources' contexts derive from context.Background (ctx only bounds
// start-up); Stop ends them. Starting twice, or after Stop, does nothing.
func (s *Supervisor) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("source: start: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != 0 {
		return nil
	}
	s.state = 1
	base, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for _, r := range s.runs {
		r.comp.Set(r.healthy(), nil)
		s.wg.Add(1)
		go s.loop(base, r)
	}
	return nil
}

// Stop cancels every source's context and waits for their Run to return,
// until ctx ends (then it returns ctx's error; the goroutines still end as
// soon as their Run honours cancellation). Stop is idempotent and may be
// called without Start.
func (s *Supervisor) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.state == 0 {
		s.state = 2
		for _, r := range s.runs {
			r.comp.Set(lifecycle.Stopped, nil)
		}
	}
	s.state = 2
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("source: stop: sources still running: %w", ctx.Err())
	}
}

func (s *Supervisor) loop(ctx context.Context, r *run) {
	defer s.wg.Done()
	name := r.src.Name()
	log := r.log
	bo := s.cfg.backoff()
	var (
		failures []time.Time // within the crash-loop window, since the last recovery
		failed   bool        // shown failed: past the limit, not recovered since
		streak   int         // failures since the source last worked
		since    time.Time   // the first of them
	)
	for {
		err := s.runOnce(ctx, r, failed)
		if ctx.Err() != nil {
			r.comp.Set(lifecycle.Stopped, nil)
			return
		}
		if err == nil {
			log.Info("source finished")
			r.comp.Set(lifecycle.Stopped, nil)
			return
		}
		r.errors.Add(1)
		msg := err.Error()
		r.lastErr.Store(&msg)
		now := time.Now()
		if r.showedWork() || streak == 0 { // it worked before failing: a new episode
			failures, failed, streak, since = failures[:0], false, 0, now
			bo.Reset()
		}
		streak++
		failures = append(pruneBefore(failures, now.Add(-s.cfg.CrashLoopWindow)), now)
		delay := min(bo.NextBackOff(), s.cfg.RestartMax)
		var pe *task.PanicError
		if errors.As(err, &pe) {
			log.Error("source panicked", zap.Any("panic", pe.Value), zap.ByteString("stack", pe.Stack))
		}
		if failed || len(failures) > s.cfg.CrashLoopLimit {
			failed = true
			ferr := fmt.Errorf("source %q: %w: %d failures since %s, restarting in %s, last: %w",
				name, ErrCrashLoop, streak, since.UTC().Format(time.RFC3339), delay.Round(time.Millisecond), err)
			log.Error("source failing, restarting", zap.Error(err), zap.Duration("delay", delay),
				zap.Int("failures", streak), zap.Time("failing_since", since))
			r.comp.Fail(ferr)
		} else {
			log.Warn("source failed, restarting", zap.Error(err), zap.Duration("delay", delay),
				zap.Int("failures_in_window", len(failures)))
			r.comp.Set(lifecycle.Degraded, err)
		}
		if !sleepCtx(ctx, delay) {
			if !failed {
				r.comp.Set(lifecycle.Stopped, nil)
			}
			return
		}
		r.restarts.Add(1)
		if !failed { // a failed source is running again once it works
			r.comp.Set(r.healthy(), nil)
		}
	}
}

// runOnce runs the source once under the recovery bookkeeping. A Run that
// shows it works (see run.working) or stays up for a whole crash-loop
// window ends the failure episode; when the source was shown failed
// (recovering), that also shows it running again. Flipping a failed
// source to running on each restart attempt instead would make it look
// healthy for as long as each attempt takes to fail.
func (s *Supervisor) runOnce(ctx context.Context, r *run, recovering bool) error {
	r.mu.Lock()
	r.inRun, r.worked, r.recovering = true, false, recovering
	r.mu.Unlock()
	up := time.AfterFunc(s.cfg.CrashLoopWindow, r.working)
	err := runGuarded(ctx, r, r.obs)
	up.Stop()
	r.mu.Lock()
	r.inRun = false
	r.mu.Unlock()
	return err
}

// showedWork reports whether the last Run showed it works.
func (r *run) showedWork() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.worked
}

// runGuarded runs the source once, turning a panic into an error.
func runGuarded(ctx context.Context, r *run, obs Observer) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("source %q: run: %w", r.src.Name(), &task.PanicError{Value: v, Stack: debug.Stack()})
		}
	}()
	return r.src.Run(runContext(ctx, obs, r.src.Name()), r.emit)
}

func pruneBefore(ts []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(cutoff) {
		i++
	}
	return append(ts[:0], ts[i:]...)
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
