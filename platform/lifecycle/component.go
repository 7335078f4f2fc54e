package lifecycle

import (
	"errors"
	"sync"
	"time"
)

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
		st = c.statusLocked()
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
	s := c.statusLocked()
	d := c.details
	c.mu.Unlock()
	if d != nil && details {
		s.Details = d()
	}
	return s
}

// statusLocked is the component's status without details, with c.mu
// held. A component that never fails after start shows no policy: none
// would act.
func (c *Component) statusLocked() Status {
	s := Status{Name: c.name, State: c.state, Since: c.since, LastError: c.lastErr,
		External: c.external, GatesReadiness: c.gatesReady, NeverFails: c.neverFails}
	if !c.neverFails {
		s.Policy = c.policy
	}
	return s
}
