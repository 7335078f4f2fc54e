// Package lifecycle keeps the registry of the host's components (platform
// parts, backends, pools, sources) and their states, and turns a
// component's fatal failure into the host's stop when its policy says so.
package lifecycle

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// State is where a component is in its life.
type State string

// The states a component moves through.
const (
	Starting State = "starting"
	Running  State = "running"
	// Paused is a component an operator paused (a worker pool that takes
	// no new work, a source that stops fetching): healthy and on purpose,
	// so it counts as running for readiness.
	Paused   State = "paused"
	Degraded State = "degraded"
	Draining State = "draining"
	Stopped  State = "stopped"
	Failed   State = "failed"
)

// Policy says what a component's failure after start does to the host.
type Policy string

const (
	// StopHost stops the host with exit status 1 when the component fails.
	StopHost Policy = "stop"
	// StayDegraded keeps the host up; the component shows failed and
	// liveness reports it (unless the component is External).
	StayDegraded Policy = "degrade"
)

// ErrDuplicateComponent is returned when two components share a name.
var ErrDuplicateComponent = errors.New("lifecycle: duplicate component")

// Status is a snapshot of one component.
type Status struct {
	Name      string    `json:"name"`
	State     State     `json:"state"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	Policy    Policy    `json:"policy"`
	// External marks a component whose state follows a dependency outside
	// the process (see External): its failure never makes the host not
	// live.
	External bool `json:"external,omitempty"`
	// GatesReadiness says whether the host is ready only while this
	// component runs.
	GatesReadiness bool `json:"gates_readiness"`
	// Details is what the component reports of itself (counters, cursor
	// positions); nil when it reports nothing.
	Details any `json:"details,omitempty"`
}

// FatalFunc is called when a component with policy StopHost fails.
type FatalFunc func(component string, err error)

// Registry holds the components. The zero value is not usable: use
// NewRegistry.
type Registry struct {
	mu       sync.Mutex
	comps    map[string]*Component
	policies map[string]Policy
	fatal    FatalFunc
	now      func() time.Time
	// fatalOf is the first component whose failure called fatal, as it
	// was then (FatalFailure).
	fatalOf *Status
}

// NewRegistry returns an empty registry. policies overrides the failure
// policy of named components (from configuration); fatal is called when a
// component whose policy is StopHost fails.
func NewRegistry(policies map[string]Policy, fatal FatalFunc) *Registry {
	if fatal == nil {
		fatal = func(string, error) {}
	}
	return &Registry{comps: map[string]*Component{}, policies: policies, fatal: fatal, now: time.Now}
}

// Option tunes a component when it is registered.
type Option func(*Component)

// External marks a component whose state follows a dependency outside the
// process (a mail server, a database, a remote disk): liveness is never
// driven by it (a restart of the process would not bring the dependency
// back), and it counts for readiness only when gatesReadiness. Without
// this option a component gates both: its failure makes the host not live,
// and anything but running makes it not ready.
func External(gatesReadiness bool) Option {
	return func(c *Component) {
		c.external = true
		c.gatesReady = gatesReadiness
	}
}

// NeverFails marks a component that never moves to failed after its
// start: its trouble shows as degraded, and a start that fails fails the
// host's start whatever its policy. A policy for it would have no effect,
// and the host refuses one (lifecycle.policies): NeverFails tells.
func NeverFails() Option {
	return func(c *Component) { c.neverFails = true }
}

// NeverFails reports whether the component called name was registered
// with the option NeverFails.
func (r *Registry) NeverFails(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.comps[name]
	return ok && c.neverFails
}

// Register adds a component in state Starting with def as its failure
// policy unless configuration overrides it. A second registration of a
// name returns ErrDuplicateComponent.
func (r *Registry) Register(name string, def Policy, opts ...Option) (*Component, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.comps[name]; ok {
		return nil, fmt.Errorf("%w: %q", ErrDuplicateComponent, name)
	}
	p := def
	if o, ok := r.policies[name]; ok {
		p = o
	}
	if p == "" {
		p = StopHost
	}
	c := &Component{reg: r, name: name, policy: p, state: Starting, since: r.now(), gatesReady: true}
	for _, o := range opts {
		o(c)
	}
	r.comps[name] = c
	return c, nil
}

// MustRegister is Register for names known to be unique; it panics on a
// duplicate (a programming error).
func (r *Registry) MustRegister(name string, def Policy, opts ...Option) *Component {
	c, err := r.Register(name, def, opts...)
	if err != nil {
		panic(err)
	}
	return c
}

// Get returns the component called name.
func (r *Registry) Get(name string) (*Component, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.comps[name]
	return c, ok
}

// Snapshot returns every component's status, sorted by name.
func (r *Registry) Snapshot() []Status { return r.snapshot(true) }

// snapshot returns every component's status, sorted by name, with the
// details only when asked: the probes (AnyFailed, AllRunning) read states
// alone and must not pay for every component's details.
func (r *Registry) snapshot(details bool) []Status {
	r.mu.Lock()
	comps := make([]*Component, 0, len(r.comps))
	for _, c := range r.comps {
		comps = append(comps, c)
	}
	r.mu.Unlock()
	out := make([]Status, 0, len(comps))
	for _, c := range comps {
		out = append(out, c.status(details))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// AnyFailed returns the first failed component's status (without details),
// if any.
func (r *Registry) AnyFailed() (Status, bool) {
	for _, s := range r.snapshot(false) {
		if s.State == Failed {
			return s, true
		}
	}
	return Status{}, false
}

// AllRunning reports whether every component is running (degraded counts
// as not running) and names the first that is not.
func (r *Registry) AllRunning() (string, bool) {
	for _, s := range r.snapshot(false) {
		if s.State != Running {
			return s.Name + " is " + string(s.State), false
		}
	}
	return "", true
}

// FatalFailure returns the component whose failure first called the
// registry's fatal function (a component with policy StopHost that
// failed), with its state and error as they were then: what stopped the
// host. Components that failed under StayDegraded, before or after, are
// not it, whatever their names.
func (r *Registry) FatalFailure() (Status, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fatalOf == nil {
		return Status{}, false
	}
	return *r.fatalOf, true
}

// LiveFailure returns the first failed component that drives liveness
// (one not marked External), if any: what makes the process not live.
func (r *Registry) LiveFailure() (Status, bool) { return LiveFailureIn(r.snapshot(false)) }

// LiveFailureIn is LiveFailure judged on the statuses ss (a Snapshot), so
// that a report shows the states it judged.
func LiveFailureIn(ss []Status) (Status, bool) {
	for _, s := range ss {
		if s.State == Failed && !s.External {
			return s, true
		}
	}
	return Status{}, false
}

// ReadyRunning reports whether every component that gates readiness is
// running (or paused by an operator) and names the first that is not.
func (r *Registry) ReadyRunning() (string, bool) { return ReadyRunningIn(r.snapshot(false)) }

// ReadyRunningIn is ReadyRunning judged on the statuses ss (a Snapshot).
func ReadyRunningIn(ss []Status) (string, bool) {
	for _, s := range ss {
		if s.GatesReadiness && s.State != Running && s.State != Paused {
			return s.Name + " is " + string(s.State), false
		}
	}
	return "", true
}

// Names returns the names of every registered component, sorted.
func (r *Registry) Names() []string { return r.names(func(*Component) bool { return true }) }

// StartsUnderway names, sorted, the components whose start has begun
// (BeginStart) and not ended: they are still in state Starting. It is what
// a start that timed out was waiting for; the components whose turn had
// not come are in state Starting too, but not among them.
func (r *Registry) StartsUnderway() []string {
	return r.names(func(c *Component) bool { return c.begun && c.state == Starting })
}

// StopsUnderway names, sorted, the components whose stop has begun
// (BeginStop) and not ended: they are not yet in state Stopped (nor was
// EndStop called). It is what a stop that timed out was waiting for; the
// components whose turn had not come are not among them, nor those that
// had stopped on their own before.
func (r *Registry) StopsUnderway() []string {
	return r.names(func(c *Component) bool { return c.stopping && c.state != Stopped })
}

// names returns, sorted, the names of the components for which is holds
// (called with the component's lock held).
func (r *Registry) names(is func(*Component) bool) []string {
	r.mu.Lock()
	comps := make([]*Component, 0, len(r.comps))
	for _, c := range r.comps {
		comps = append(comps, c)
	}
	r.mu.Unlock()
	var names []string
	for _, c := range comps {
		c.mu.Lock()
		if is(c) {
			names = append(names, c.name)
		}
		c.mu.Unlock()
	}
	sort.Strings(names)
	return names
}

// Component is one registered part of the host. Its methods are safe for
// concurrent use.
type Component struct {
	reg     *Registry
	name    string
	policy  Policy
	mu      sync.Mutex
	state   State
	since   time.Time
	lastErr string
	details func() any
	// external and gatesReady are set at registration (External).
	external   bool
	gatesReady bool
	// neverFails is set at registration (NeverFails).
	neverFails bool
	// begun says that the component's start has begun (BeginStart): a
	// component is in state Starting from its registration on, also
	// while its turn to start has not come.
	begun bool
	// stopping says that the component's stop has begun (BeginStop); it
	// ends with state Stopped.
	stopping bool
}

// Name returns the component's name.
func (c *Component) Name() string { return c.name }

// State returns the current state.
func (c *Component) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// BeginStart records that the component's start has begun. Track's start
// hook calls it; an owner that starts its components itself (the worker
// runtime its pools) calls it when their start begins. It only feeds
// StartsUnderway.
func (c *Component) BeginStart() {
	c.mu.Lock()
	c.begun = true
	c.mu.Unlock()
}

// BeginStop records that the component's stop has begun. Track's stop
// hook calls it; an owner that stops its components itself (the worker
// runtime its pools, the source supervisor its sources) calls it when
// their stop begins. It only feeds StopsUnderway.
func (c *Component) BeginStop() {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
}

// EndStop records that the component's stop has ended while it stays in
// another state than Stopped (a source that stays failed). Moving to
// Stopped ends the stop as well.
func (c *Component) EndStop() {
	c.mu.Lock()
	c.stopping = false
	c.mu.Unlock()
}

// SetDetails installs a function that reports the component's details for
// status pages. It is called on every snapshot and must be cheap and safe
// for concurrent use.
func (c *Component) SetDetails(f func() any) {
	c.mu.Lock()
	c.details = f
	c.mu.Unlock()
}

// Set moves the component to state s. A non-nil err is kept as the last
// error (a nil err keeps the previous one). Moving to Failed calls the
// registry's fatal function when the policy is StopHost.
func (c *Component) Set(s State, err error) {
	c.mu.Lock()
	changed := c.state != s
	if changed {
		c.state = s
		c.since = c.reg.now()
	}
	if err != nil {
		c.lastErr = err.Error()
	}
	fatal := s == Failed && changed && c.policy == StopHost
	var st Status
	if fatal {
		st = Status{Name: c.name, State: c.state, Since: c.since, LastError: c.lastErr, Policy: c.policy,
			External: c.external, GatesReadiness: c.gatesReady}
	}
	c.mu.Unlock()
	if fatal {
		if err == nil {
			err = errors.New("failed")
		}
		if st.LastError == "" {
			st.LastError = err.Error()
		}
		c.reg.mu.Lock()
		if c.reg.fatalOf == nil {
			c.reg.fatalOf = &st
		}
		c.reg.mu.Unlock()
		c.reg.fatal(c.name, err)
	}
}

// Fail is Set(Failed, err).
func (c *Component) Fail(err error) { c.Set(Failed, err) }

// Status returns a snapshot of the component.
func (c *Component) Status() Status { return c.status(true) }

func (c *Component) status(details bool) Status {
	c.mu.Lock()
	s := Status{Name: c.name, State: c.state, Since: c.since, LastError: c.lastErr, Policy: c.policy,
		External: c.external, GatesReadiness: c.gatesReady}
	d := c.details
	c.mu.Unlock()
	if d != nil && details {
		s.Details = d()
	}
	return s
}
