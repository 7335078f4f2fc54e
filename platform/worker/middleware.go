package worker

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/fx"

	"github.com/plba/plba/platform/task"
)

// ErrInvalidMiddleware is wrapped by the error the runtime returns for a
// middleware without a name or a function, or two with one name.
var ErrInvalidMiddleware = errors.New("worker: invalid middleware")

// MiddlewareGroup is the fx value group that middleware for every route
// is collected in.
const MiddlewareGroup = "task.middleware"

// Middleware wraps the handler of every route, as Watermill's
// router.AddMiddleware does. Middleware runs outside the route's own
// middleware (what its handler was built with, task.Chain) and inside the
// pool's recover, timeout and observer: a middleware sees the task's
// context with its trace span and log fields, and its time counts in the
// task's timeout.
type Middleware struct {
	// Name identifies the middleware in errors; unique. Required.
	Name string
	// Order places the middleware explicitly: lower runs first (outer).
	// Equal orders run by Name. fx gives group values in no fixed order,
	// so the order is never the order of registration.
	Order int
	// Wrap is the middleware. Required.
	Wrap task.Middleware
}

// AsMiddleware annotates a constructor returning a Middleware so that its
// result joins the "task.middleware" group:
//
//	fx.Provide(worker.AsMiddleware(func(l *zap.Logger) worker.Middleware {
//		return worker.Middleware{Name: "audit", Order: 10, Wrap: audit(l)}
//	}))
func AsMiddleware(ctor any) any {
	return fx.Annotate(ctor, fx.ResultTags(`group:"`+MiddlewareGroup+`"`))
}

// SupplyMiddleware contributes middleware for every route, placed by
// order (lower runs first), to the "task.middleware" group.
func SupplyMiddleware(name string, order int, wrap task.Middleware) fx.Option {
	m := Middleware{Name: name, Order: order, Wrap: wrap}
	return fx.Provide(AsMiddleware(func() Middleware { return m }))
}

// sortMiddleware checks mws and returns them in running order.
func sortMiddleware(mws []Middleware) ([]Middleware, error) {
	out := slices.Clone(mws)
	slices.SortStableFunc(out, func(a, b Middleware) int {
		if a.Order != b.Order {
			return a.Order - b.Order
		}
		return strings.Compare(a.Name, b.Name)
	})
	seen := make(map[string]bool, len(out))
	for _, m := range out {
		switch {
		case m.Name == "":
			return nil, fmt.Errorf("%w: a middleware (order %d) has no name", ErrInvalidMiddleware, m.Order)
		case m.Wrap == nil:
			return nil, fmt.Errorf("%w: middleware %q has no function", ErrInvalidMiddleware, m.Name)
		case seen[m.Name]:
			return nil, fmt.Errorf("%w: middleware %q is given twice", ErrInvalidMiddleware, m.Name)
		}
		seen[m.Name] = true
	}
	return out, nil
}

// wrapRoutes returns routes with every handler wrapped by mws (already in
// running order: the first is outermost).
func wrapRoutes(routes []task.Route, mws []Middleware) []task.Route {
	if len(mws) == 0 {
		return routes
	}
	fns := make([]task.Middleware, len(mws))
	for i, m := range mws {
		fns[i] = m.Wrap
	}
	out := make([]task.Route, len(routes))
	for i, r := range routes {
		if r.Handler != nil {
			r.Handler = task.Chain(r.Handler, fns...)
		}
		out[i] = r
	}
	return out
}
