package lifecycle

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
