package source

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
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
	Name string `json:"name"`
	// Emitted counts the tasks the source emitted that the backend
	// stored, as the result of each Enqueue tells: not the duplicates it
	// dropped (Duplicates), nor a task emitted again while the backend
	// stores it already (task.StoredAgain), which counts once; a task
	// of a batch that failed is counted when the error confirms it was
	// stored (a JetStream batch partly stored), not one whose storing
	// was not confirmed (queue.ErrOutcomeUnknown: emitted again, it is
	// stored then, or found stored already and not counted).
	Emitted int64 `json:"emitted"`
	// Duplicates counts the tasks the source emitted that the backend
	// dropped as duplicates of another task with their key: one still
	// live (task.Held) or one that finished (task.Finished), whose
	// outcome the source is told.
	Duplicates int64 `json:"duplicates"`
	Errors     int64 `json:"errors"`
	Restarts   int64 `json:"restarts"`
	// Paused reports whether an operator paused the source (Pause).
	Paused    bool   `json:"paused"`
	LastError string `json:"last_error,omitempty"`
	// State is the source's component state: running, paused,
	// degraded, failed, stopped, ...
	State lifecycle.State `json:"state,omitempty"`
	// LastPoll is when the source's last poll (through Poll or
	// StartPoll) ended; zero before the first, and for a source that
	// does not poll.
	LastPoll time.Time `json:"last_poll,omitzero"`
	// LastEmit is when the source last emitted (pushed) tasks; zero
	// before the first.
	LastEmit time.Time `json:"last_emit,omitzero"`
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
// and restarts a source whose Run fails (returns an error, panics or calls
// runtime.Goexit), for ever, with capped exponential back-off (see
// Config). Each source is the
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
		r.emit.pushed = r.pushed
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

// SetCompleter makes every source's emitter tell its source, through f,
// of the tasks the backend drops at Enqueue as duplicates of finished ones
// (task.Finished), instead of completing them itself (see NewEmitter). A
// nil f restores the emitters' own completion. Call it before Start. The
// worker runtime sets one that completes through the pool of the task's
// queue, under the pool's guard.
func (s *Supervisor) SetCompleter(f CompleteFunc) {
	for _, r := range s.runs {
		if r.emit.own == nil {
			continue
		}
		if f == nil {
			r.emit.complete = r.emit.own
		} else {
			r.emit.complete = f
		}
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
// until ctx ends (then it returns an error wrapping ctx's that names the
// sources still running, which lifecycle.Registry.StopsUnderway names as
// well; the goroutines still end as soon as their Run honours
// cancellation). Stop is idempotent and may be
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
		for _, r := range s.runs {
			r.beginStop()
		}
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
		var names []string
		for _, r := range s.runs {
			if r.running() {
				names = append(names, r.src.Name())
			}
		}
		if len(names) == 0 { // they all ended just now
			return fmt.Errorf("source: stop: sources still running: %w", ctx.Err())
		}
		return fmt.Errorf("source: stop: sources still running: %s: %w", strings.Join(names, ", "), ctx.Err())
	}
}

func pruneBefore(ts []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(cutoff) {
		i++
	}
	return append(ts[:0], ts[i:]...)
}
