package lifecycle

import (
	"sort"
	"time"
)

// Status is a snapshot of one component.
type Status struct {
	Name      string    `json:"name"`
	State     State     `json:"state"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	// Policy is what the component's failure after start does to the
	// host; empty for a component that never fails after start
	// (NeverFails), for which no policy does anything.
	Policy Policy `json:"policy,omitempty"`
	// NeverFails marks a component registered with NeverFails (a worker
	// pool, the queue backend): it never moves to failed after its start
	// (its trouble shows as degraded, a failed start fails the host's
	// start), so it has no policy.
	NeverFails bool `json:"never_fails,omitempty"`
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
