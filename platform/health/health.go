package health

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/fx"

	"github.com/plba/plba/platform/lifecycle"
)

// ChecksGroup is the fx value group health checks are collected in.
const ChecksGroup = "health.checks"

// Check is one health check. Func is called on every Interval with a
// context bounded by Timeout; a nil error is healthy.
type Check struct {
	// Name identifies the check in /healthz. Required and unique.
	Name string
	// Func performs the check. Required.
	Func func(ctx context.Context) error
	// Interval between runs. Zero means the registry's default (10s).
	Interval time.Duration
	// Timeout bounds one run. Zero means the registry's default (2s).
	Timeout time.Duration
	// Gating says whether a failure makes /readyz answer 503. A check that
	// does not gate only reports.
	Gating bool
}

// AsCheck annotates a constructor returning a Check so that its result joins
// the "health.checks" group:
//
//	fx.Provide(health.AsCheck(NewStoreCheck))
func AsCheck(ctor any) any {
	return fx.Annotate(ctor, fx.ResultTags(`group:"`+ChecksGroup+`"`))
}

// SupplyCheck contributes a ready Check value to the "health.checks" group.
func SupplyCheck(c Check) fx.Option {
	return fx.Provide(AsCheck(func() Check { return c }))
}

// Result is the last outcome of one check.
type Result struct {
	Name      string        `json:"name"`
	Healthy   bool          `json:"healthy"`
	Gating    bool          `json:"gating"`
	Latency   time.Duration `json:"latency_ns"`
	LastError string        `json:"last_error,omitempty"`
	// Since is when the check entered its current healthy/unhealthy state.
	Since time.Time `json:"since"`
	// CheckedAt is when the check last finished; zero before its first run.
	CheckedAt time.Time `json:"checked_at"`
}

// Options tune a Registry.
type Options struct {
	// DefaultInterval for checks without one. Zero means 10s.
	DefaultInterval time.Duration
	// DefaultTimeout for checks without one. Zero means 2s.
	DefaultTimeout time.Duration
}

// Registry runs checks and aggregates them with the component registry.
type Registry struct {
	opts       Options
	components *lifecycle.Registry
	checks     []Check
	mu         sync.RWMutex
	results    map[string]*Result
	// running holds a token while a check's last run has not returned
	// (it returns late, or ignores its context): it is not started again
	// until it does, so a hanging check holds one goroutine, not one more
	// per interval. A run waits for the token within its own timeout.
	running   map[string]chan struct{}
	shutting  atomic.Bool
	starting  atomic.Bool
	wg        sync.WaitGroup
	cancel    context.CancelFunc
	startOnce sync.Once
	stopOnce  sync.Once
}

// ErrDuplicateCheck is returned when two checks share a name.
var ErrDuplicateCheck = errors.New("health: duplicate check")

// NewRegistry validates checks and returns a registry that has not started
// running them. Until a check's first run finishes it counts as unhealthy.
func NewRegistry(opts Options, components *lifecycle.Registry, checks []Check) (*Registry, error) {
	if opts.DefaultInterval <= 0 {
		opts.DefaultInterval = 10 * time.Second
	}
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = 2 * time.Second
	}
	sorted := append([]Check(nil), checks...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	r := &Registry{opts: opts, components: components, results: map[string]*Result{}, running: map[string]chan struct{}{}}
	for i := range sorted {
		c := &sorted[i]
		if c.Name == "" || c.Func == nil {
			return nil, fmt.Errorf("health: check %q needs a name and a func", c.Name)
		}
		if _, dup := r.results[c.Name]; dup {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateCheck, c.Name)
		}
		if c.Interval <= 0 {
			c.Interval = opts.DefaultInterval
		}
		if c.Timeout <= 0 {
			c.Timeout = opts.DefaultTimeout
		}
		r.results[c.Name] = &Result{Name: c.Name, Gating: c.Gating, LastError: "not checked yet"}
		r.running[c.Name] = make(chan struct{}, 1)
	}
	r.checks = sorted
	return r, nil
}

// Start runs every check once right away and then on its interval (a
// failing one sooner, see retryInitial), each in its own goroutine, until
// Stop.
func (r *Registry) Start() {
	r.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		for _, c := range r.checks {
			r.wg.Add(1)
			go r.loop(ctx, c)
		}
	})
}

// Stop ends the check loops and waits for them.
func (r *Registry) Stop() {
	r.stopOnce.Do(func() {
		if r.cancel != nil {
			r.cancel()
		}
		r.wg.Wait()
	})
}

// RunAll runs every check once, synchronously (for tests and for
// "host config validate"-style one-shot use).
func (r *Registry) RunAll(ctx context.Context) {
	for _, c := range r.checks {
		r.runOnce(ctx, c)
	}
}

// SetShuttingDown turns readiness off for good: the host is stopping.
func (r *Registry) SetShuttingDown() { r.shutting.Store(true) }

// SetStarting holds readiness off while on is true: the host is starting,
// and its start has not returned yet. Every component can be running and
// every check healthy before the last start hook has returned; a host
// that read ready then would be sent work, and a stop, while its start
// could still fail or be abandoned.
func (r *Registry) SetStarting(on bool) { r.starting.Store(on) }

// Retry pace of a failing check. While the host starts (the first
// startupWindow after Start) a failing check runs again every retryInitial,
// so a dependency that comes up a moment after start (a mailbox
// connecting) makes the host ready within milliseconds. After that a
// failing check backs off from retryInitial, doubling up to its interval,
// so a dependency that stays down is not hammered.
const (
	retryInitial  = 5 * time.Millisecond
	startupWindow = time.Second
)

func (r *Registry) loop(ctx context.Context, c Check) {
	defer r.wg.Done()
	started := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	retry := retryInitial
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := c.Interval
		switch {
		case r.runOnce(ctx, c):
			retry = retryInitial
		case time.Since(started) < startupWindow:
			next = min(retryInitial, c.Interval)
		default:
			next = min(retry, c.Interval)
			retry = min(2*retry, c.Interval)
		}
		t.Reset(next)
	}
}

// runOnce runs c and records the result; it reports whether c passed.
func (r *Registry) runOnce(ctx context.Context, c Check) bool {
	cctx, cancel := context.WithTimeout(ctx, c.Timeout)
	start := time.Now()
	var err error
	// A run that timed out may return a moment after its deadline (a
	// driver closing its connection): the next run waits for it, within
	// its own timeout, before it calls the previous run hung.
	busy := r.running[c.Name]
	select {
	case busy <- struct{}{}:
		err = runGuarded(cctx, c.Func, func() { <-busy })
	case <-cctx.Done():
		err = errors.New("its previous run has not returned yet (the check ignores its context)")
	}
	took := time.Since(start)
	cancel()
	if ctx.Err() != nil {
		return false // stopping: keep the last real result
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.results[c.Name]
	healthy := err == nil
	if healthy != res.Healthy || res.CheckedAt.IsZero() {
		res.Since = time.Now()
	}
	res.Healthy = healthy
	res.Latency = took
	res.CheckedAt = time.Now()
	if err != nil {
		res.LastError = err.Error()
	} else {
		res.LastError = ""
	}
	return healthy
}

// runGuarded calls f, returning when it does or when ctx ends (a check
// that ignores its context cannot hang the loop), and turns a panic into an
// error. returned is called when f has returned, however late.
func runGuarded(ctx context.Context, f func(context.Context) error, returned func()) error {
	done := make(chan error, 1)
	go func() { // ends when f returns; runOnce starts no second one before
		defer returned()
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("check panicked: %v", p)
			}
		}()
		done <- f(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("timed out: %w", ctx.Err())
	}
}

// Results returns the last result of every check, sorted by name.
func (r *Registry) Results() []Result {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.resultsLocked()
}

// resultsLocked is Results with r.mu held.
func (r *Registry) resultsLocked() []Result {
	out := make([]Result, 0, len(r.results))
	for _, c := range r.checks {
		out = append(out, *r.results[c.Name])
	}
	return out
}

// Live reports whether the process should be considered alive: no
// component has failed, apart from those that follow an outside
// dependency (lifecycle.External, as every source). It never depends on
// checks or on anything outside the process.
func (r *Registry) Live() (bool, string) {
	if r.components == nil {
		return true, "ok"
	}
	return liveness(r.components.LiveFailure())
}

// liveness words a component failure that makes the host not live.
func liveness(s lifecycle.Status, failed bool) (bool, string) {
	if failed {
		return false, fmt.Sprintf("component %s failed: %s", s.Name, s.LastError)
	}
	return true, "ok"
}

// Ready reports whether the host should receive work: neither starting
// (SetStarting) nor shutting down, every component that gates readiness
// running (an External component gates it only when it was registered
// so: a source, when configured) and every gating check healthy.
func (r *Registry) Ready() (bool, string) {
	if ok, why := r.held(); !ok {
		return false, why
	}
	if r.components != nil {
		if ok, why := readiness(r.components.ReadyRunning()); !ok {
			return false, why
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.checksReadyLocked()
}

// held reports readiness off while the host starts or stops, whatever
// its components and checks say.
func (r *Registry) held() (bool, string) {
	if r.shutting.Load() {
		return false, "shutting down"
	}
	if r.starting.Load() {
		return false, "starting"
	}
	return true, ""
}

// readiness words lifecycle's ReadyRunning answer.
func readiness(why string, running bool) (bool, string) {
	if !running {
		return false, "component " + why
	}
	return true, "ok"
}

// checksReadyLocked reports whether every gating check passed its last
// run, with r.mu held, and names the first that did not.
func (r *Registry) checksReadyLocked() (bool, string) {
	for _, c := range r.checks {
		res := r.results[c.Name]
		if res.Gating && !res.Healthy {
			return false, fmt.Sprintf("check %s: %s", c.Name, res.LastError)
		}
	}
	return true, "ok"
}
