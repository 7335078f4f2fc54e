package lifecycle

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
