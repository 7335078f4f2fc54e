package worker

import (
	"go.uber.org/fx"

	"github.com/plba/plba/platform/task"
)

// RoutesGroup is the fx value group that task routes are collected in;
// Module consumes it.
const RoutesGroup = "task.routes"

// AsRoute annotates a constructor returning a task.Route so that its
// result joins the "task.routes" group:
//
//	fx.Provide(worker.AsRoute(NewInvoiceRoute))
//	fx.Provide(worker.AsRoute(func(m *Mailer) task.Route { return Invoice.Handle(m.Send) }))
func AsRoute(ctor any) any {
	return fx.Annotate(ctor, fx.ResultTags(`group:"`+RoutesGroup+`"`))
}

// SupplyRoute contributes a ready task.Route to the "task.routes" group:
//
//	worker.SupplyRoute(Invoice.Handle(send))
func SupplyRoute(r task.Route) fx.Option {
	return fx.Provide(AsRoute(func() task.Route { return r }))
}
