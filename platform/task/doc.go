// Package task holds the task model that every other part of the runtime
// speaks: the Task itself, the Handler that processes it, Middleware that
// wraps handlers, the error classes a handler returns to steer retries, and
// the Route that binds a task kind to a queue and a handler.
//
// A task's way through the runtime:
//
//	Source ──emit──▶ queue backend ──deliver──▶ worker pool ──▶ middleware ──▶ Handler
//
// Delivery is at least once, so handlers must be idempotent; every task has a
// stable Key that backends de-duplicate on.
//
// # Error classes
//
// A handler steers what happens to a failed task through the error it
// returns:
//
//   - an ordinary error: the task is retried with the pool's retry policy
//     until its route's maximum attempts, then dead-lettered;
//   - Permanent(err): no retry, straight to the dead letter with err's text
//     as the reason;
//   - RetryAfter(d, err): retried after d, whatever the policy says.
//
// A panic in a handler is recovered by the worker, logged with its stack and
// counted as an ordinary failure.
//
// # Typed kinds
//
// Define ties a kind to its payload type once; producers call New (or
// Enqueue), the module supplies Handle's Route, and the handler receives
// the decoded payload, reaching the task itself through FromContext:
//
//	var Invoice = task.Define[InvoiceArgs]("invoice.send", task.Queue("billing"))
//
//	worker.SupplyRoute(Invoice.Handle(func(ctx context.Context, a InvoiceArgs) error { ... }))
//	t, err := Invoice.New(InvoiceArgs{Number: "2024-17"})
package task
