package worker

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/plba/plba/platform/task"
)

// ErrDuplicateRoute is wrapped by the error NewRouter returns when two
// routes claim one kind.
var ErrDuplicateRoute = errors.New("worker: duplicate route")

// ErrInvalidRoute is wrapped by the error NewRouter returns for a route
// without a kind or a handler.
var ErrInvalidRoute = errors.New("worker: invalid route")

// Router maps task kinds to their routes. It is immutable once built and
// safe for concurrent use.
type Router struct {
	routes map[string]*route
	queues []string
}

// route is a task.Route resolved for the hot path.
type route struct {
	task.Route
	queue string
}

// NewRouter builds a router from routes (the "task.routes" group). Two
// routes for one kind are an error naming both (by Route.Name, or "unnamed
// route" when empty); so is a route without kind or handler.
func NewRouter(routes []task.Route) (*Router, error) {
	r := &Router{routes: make(map[string]*route, len(routes))}
	seen := map[string]bool{}
	for _, rt := range routes {
		if rt.Kind == "" {
			return nil, fmt.Errorf("%w: %s has no kind", ErrInvalidRoute, routeName(rt))
		}
		if rt.Handler == nil {
			return nil, fmt.Errorf("%w: %s for kind %q has no handler", ErrInvalidRoute, routeName(rt), rt.Kind)
		}
		if rt.MaxAttempts < 0 || rt.Timeout < 0 {
			return nil, fmt.Errorf("%w: %s for kind %q: negative max attempts or timeout", ErrInvalidRoute, routeName(rt), rt.Kind)
		}
		if prev, ok := r.routes[rt.Kind]; ok {
			return nil, fmt.Errorf("%w: kind %q is routed by both %s and %s", ErrDuplicateRoute, rt.Kind, routeName(prev.Route), routeName(rt))
		}
		q := rt.QueueName()
		r.routes[rt.Kind] = &route{Route: rt, queue: q}
		if !seen[q] {
			seen[q] = true
			r.queues = append(r.queues, q)
		}
	}
	sort.Strings(r.queues)
	return r, nil
}

func routeName(r task.Route) string {
	if r.Name == "" {
		return "unnamed route"
	}
	return fmt.Sprintf("%q", r.Name)
}

// Queues returns the queues that have at least one route, sorted.
func (r *Router) Queues() []string { return append([]string(nil), r.queues...) }

// Route returns the route of kind.
func (r *Router) Route(kind string) (task.Route, bool) {
	rt, ok := r.routes[kind]
	if !ok {
		return task.Route{}, false
	}
	return rt.Route, true
}

// QueueFor returns the queue tasks of kind go to: the route's queue, or
// task.DefaultQueue for an unknown kind (where the pool dead-letters it).
func (r *Router) QueueFor(kind string) string {
	if rt, ok := r.routes[kind]; ok {
		return rt.queue
	}
	return task.DefaultQueue
}

// Kinds returns the routed kinds, sorted.
func (r *Router) Kinds() []string {
	out := make([]string, 0, len(r.routes))
	for k := range r.routes {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// lookup returns the route of kind or nil.
func (r *Router) lookup(kind string) *route { return r.routes[kind] }

// timeoutFor returns the handler timeout of rt in a pool whose default is d.
func (rt *route) timeoutFor(d time.Duration) time.Duration {
	if rt != nil && rt.Timeout > 0 {
		return rt.Timeout
	}
	return d
}

// maxAttemptsFor returns the maximum attempts of rt in a pool whose
// default is n.
func (rt *route) maxAttemptsFor(n int) int {
	if rt != nil && rt.MaxAttempts > 0 {
		return rt.MaxAttempts
	}
	return n
}
