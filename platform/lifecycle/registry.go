package lifecycle

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// ErrDuplicateComponent is returned when two components share a name.
var ErrDuplicateComponent = errors.New("lifecycle: duplicate component")

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
