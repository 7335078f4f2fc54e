package source

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/internal/sleep"
	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/task"
)

// run is one supervised source: its emitter, component, counters and the
// bookkeeping of its restarts.
type run struct {
	src      Source
	emit     *emitter
	comp     *lifecycle.Component
	log      *zap.Logger
	obs      *healthObserver
	errors   atomic.Int64
	restarts atomic.Int64
	lastErr  atomic.Pointer[string]
	lastPoll atomic.Int64 // unix nanoseconds; 0: never
	lastEmit atomic.Int64 // unix nanoseconds; 0: never

	// mu guards the recovery of a restarted Run, which a poll, an emit
	// or a timer may report while the supervisor's loop decides on its
	// failure.
	mu         sync.Mutex
	ended      bool // the supervisor's loop for the source has returned
	inRun      bool // a Run is in progress
	recovering bool // the source is shown failed: the Run in progress must show it works
	worked     bool // the Run in progress (or the last) has shown it works
}

// end records that the supervisor's loop for the source returned: its
// stop, if one began, has ended (a source that stays failed included).
func (r *run) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = true
	r.comp.EndStop()
}

// beginStop tells the source's component that its stop began, unless its
// loop returned already (a source that finished).
func (r *run) beginStop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ended {
		r.comp.BeginStop()
	}
}

// running reports whether the supervisor's loop for the source has not
// returned.
func (r *run) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.ended
}

// pushed records that an Emit handed a non-empty batch over (the backend
// accepted it, duplicates included): when the source last emitted, and
// that it works.
func (r *run) pushed() {
	r.lastEmit.Store(time.Now().UnixNano())
	r.working()
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
	s := Stats{Name: r.src.Name(), Emitted: r.emit.emitted.Load(), Duplicates: r.emit.duplicates.Load(), Errors: r.errors.Load(), Restarts: r.restarts.Load(), Paused: r.emit.gate.isPaused()}
	if p := r.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	s.State = r.comp.State()
	if ns := r.lastPoll.Load(); ns != 0 {
		s.LastPoll = time.Unix(0, ns)
	}
	if ns := r.lastEmit.Load(); ns != 0 {
		s.LastEmit = time.Unix(0, ns)
	}
	if d, ok := r.src.(Detailer); ok {
		s.Details = d.Details()
	}
	return s
}

// loop runs r until ctx ends or its Run finishes, restarting it after
// each failure (see Supervisor).
func (s *Supervisor) loop(ctx context.Context, r *run) {
	defer s.wg.Done()
	defer r.end()
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
		if !sleep.For(ctx.Done(), delay) {
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

// runGuarded runs the source once, turning a panic into an error, and
// runtime.Goexit (testing's FailNow, say) into one wrapping
// task.ErrGoexit: Run runs on a goroutine of its own (see call), so that
// the supervisor's loop survives it and restarts the source, as after a
// panic, instead of ending with it (the source never restarted, and
// shown running).
func runGuarded(ctx context.Context, r *run, obs Observer) error {
	returned := false
	err := call(func() error {
		err := r.src.Run(runContext(ctx, obs, r.src.Name()), r.emit)
		returned = true
		return err
	})
	if !returned {
		return fmt.Errorf("source %q: run: %w", r.src.Name(), err)
	}
	return err
}
