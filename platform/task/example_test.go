package task_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plba/plba/platform/task"
)

type invoice struct {
	Number string `json:"number"`
	Amount int    `json:"amount"`
}

// A typed handler: domain code receives the decoded value, never the Task.
// A payload that does not decode is a permanent failure.
func ExampleJSON() {
	h := task.JSON(func(_ context.Context, inv invoice) error {
		if inv.Amount <= 0 {
			return task.Permanentf("invoice %s: amount %d", inv.Number, inv.Amount)
		}
		fmt.Printf("send invoice %s over %d\n", inv.Number, inv.Amount)
		return nil
	})
	t, _ := task.NewJSON("invoice.send", invoice{Number: "2024-17", Amount: 120})
	fmt.Println(h.Handle(context.Background(), t))

	bad, _ := task.NewJSON("invoice.send", invoice{Number: "2024-18"})
	err := h.Handle(context.Background(), bad)
	fmt.Println(err, task.IsPermanent(err))

	garbled := &task.Task{ID: "t1", Kind: "invoice.send", Payload: []byte("{")}
	fmt.Println(task.IsPermanent(h.Handle(context.Background(), garbled)))
	// Output:
	// send invoice 2024-17 over 120
	// <nil>
	// permanent: invoice 2024-18: amount 0 true
	// true
}

// Middleware wraps handlers; Chain(h, a, b) runs a, then b, then h.
func ExampleChain() {
	trace := func(name string) task.Middleware {
		return func(next task.Handler) task.Handler {
			return task.HandlerFunc(func(ctx context.Context, t *task.Task) error {
				fmt.Println("enter", name)
				defer fmt.Println("leave", name)
				return next.Handle(ctx, t)
			})
		}
	}
	h := task.Chain(task.HandlerFunc(func(context.Context, *task.Task) error {
		fmt.Println("handle")
		return nil
	}), trace("outer"), trace("inner"))
	_ = h.Handle(context.Background(), &task.Task{Kind: "k"})
	// Output:
	// enter outer
	// enter inner
	// handle
	// leave inner
	// leave outer
}

// The error a handler returns steers what happens next: retry with the
// pool's back-off, retry after a given delay, or no retry at all.
func ExampleRetryAfter() {
	errs := []error{
		errors.New("database busy"),
		task.RetryAfter(30*time.Second, errors.New("rate limited")),
		task.Permanent(errors.New("unknown customer")),
	}
	for _, err := range errs {
		d, ok := task.RetryDelay(err)
		fmt.Printf("%-40q permanent=%t delay=%v (%t)\n", err.Error(), task.IsPermanent(err), d, ok)
	}
	// Output:
	// "database busy"                          permanent=false delay=0s (false)
	// "retry after 30s: rate limited"          permanent=false delay=30s (true)
	// "permanent: unknown customer"            permanent=true delay=0s (false)
}

// InvoiceArgs is the payload of the "invoice.send" kind.
type InvoiceArgs struct {
	Number string `json:"number"`
	Cents  int    `json:"cents"`
}

// Invoice ties the kind, its queue and its payload type together once.
var Invoice = task.Define[InvoiceArgs]("invoice.send", task.Queue("billing"), task.MaxAttempts(3))

// A typed kind: the producer makes tasks with New, the consumer's route
// comes from Handle, and the compiler checks both use InvoiceArgs. The
// handler reaches the task (id, attempt, headers) through its context.
func ExampleDefine() {
	route := Invoice.Handle(func(ctx context.Context, a InvoiceArgs) error {
		t, _ := task.FromContext(ctx)
		fmt.Printf("attempt %d: send invoice %s over %d cents\n", t.Attempt, a.Number, a.Cents)
		return nil
	})
	// In a module: worker.SupplyRoute(route).
	fmt.Println(route.Kind, route.QueueName(), route.MaxAttempts)

	t, err := Invoice.New(InvoiceArgs{Number: "2024-17", Cents: 12000})
	if err != nil {
		panic(err)
	}
	t.Attempt = 1 // the runtime counts attempts
	_ = route.Handler.Handle(context.Background(), t)
	// Output:
	// invoice.send billing 3
	// attempt 1: send invoice 2024-17 over 12000 cents
}
