package memory_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// The life of a task in the in-memory backend: enqueued, leased (in
// flight), acked (gone).
func ExampleNew() {
	ctx := context.Background()
	b := memory.New(memory.Options{Capacity: 100})
	defer func() { _ = b.Close(ctx) }()

	err := b.Enqueue(ctx, &task.Task{Kind: "mail.send", Queue: "mail", Payload: []byte("ann@example.org")})
	if err != nil {
		panic(err)
	}
	st, _ := b.Stats(ctx, "mail")
	fmt.Printf("ready=%d in_flight=%d\n", st.Ready, st.InFlight)

	ds, err := b.Lease(ctx, "mail", 10, 30*time.Second)
	if err != nil {
		panic(err)
	}
	d := ds[0]
	fmt.Printf("leased %s %q attempt %d\n", d.Task.Kind, d.Task.Payload, d.Task.Attempt)
	st, _ = b.Stats(ctx, "mail")
	fmt.Printf("ready=%d in_flight=%d\n", st.Ready, st.InFlight)

	if err := b.Ack(ctx, d); err != nil {
		panic(err)
	}
	st, _ = b.Stats(ctx, "mail")
	fmt.Printf("ready=%d in_flight=%d\n", st.Ready, st.InFlight)
	fmt.Println(errors.Is(b.Ack(ctx, d), queue.ErrLeaseLost)) // settled already
	// Output:
	// ready=1 in_flight=0
	// leased mail.send "ann@example.org" attempt 1
	// ready=0 in_flight=1
	// ready=0 in_flight=0
	// true
}

// A failed delivery is retried (here at once; a time in the future delays
// it) with its attempt counted, then dead-lettered with a reason, and
// finally re-driven from the dead letter.
func ExampleBackend_DeadLetter() {
	ctx := context.Background()
	b := memory.New(memory.Options{})
	defer func() { _ = b.Close(ctx) }()

	if err := b.Enqueue(ctx, &task.Task{ID: "t1", Kind: "invoice.render", Queue: "docs"}); err != nil {
		panic(err)
	}
	ds, _ := b.Lease(ctx, "docs", 1, 0)
	if err := b.Retry(ctx, ds[0], time.Now()); err != nil {
		panic(err)
	}
	ds, _ = b.Lease(ctx, "docs", 1, 0)
	fmt.Println("attempt", ds[0].Task.Attempt)
	if err := b.DeadLetter(ctx, ds[0], "template missing"); err != nil {
		panic(err)
	}

	st, _ := b.Stats(ctx, "docs")
	fmt.Printf("ready=%d dead=%d\n", st.Ready, st.Dead)
	dead, _ := b.ListDead(ctx, "docs", 0)
	fmt.Println(dead[0].Task.ID, dead[0].Reason)

	n, _ := b.Redrive(ctx, "docs") // all of the queue's dead letters
	ds, _ = b.Lease(ctx, "docs", 1, 0)
	fmt.Println("redriven", n, "attempt", ds[0].Task.Attempt)
	_ = b.Ack(ctx, ds[0])
	// Output:
	// attempt 2
	// ready=0 dead=1
	// t1 template missing
	// redriven 1 attempt 1
}

// Tasks are de-duplicated by Key while a task with that key is live: the
// second enqueue is dropped silently.
func ExampleBackend_Enqueue_dedup() {
	ctx := context.Background()
	b := memory.New(memory.Options{})
	defer func() { _ = b.Close(ctx) }()

	for range 2 {
		err := b.Enqueue(ctx, &task.Task{Kind: "mail.received", Queue: "mail", Key: "imap:INBOX:42@example.com"})
		if err != nil {
			panic(err)
		}
	}
	st, _ := b.Stats(ctx, "mail")
	fmt.Println("ready", st.Ready)
	// Output:
	// ready 1
}

// A bounded queue with FailFast refuses what does not fit with
// queue.ErrFull instead of blocking the producer.
func ExampleOptions_failFast() {
	ctx := context.Background()
	b := memory.New(memory.Options{Capacity: 1, FailFast: true})
	defer func() { _ = b.Close(ctx) }()

	fmt.Println(b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q"}))
	err := b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q"})
	fmt.Println(errors.Is(err, queue.ErrFull))
	// Output:
	// <nil>
	// true
}

// Close stops new work: a Lease waiting on an empty queue returns
// queue.ErrClosed, and so does every later call.
func ExampleBackend_Close() {
	ctx := context.Background()
	b := memory.New(memory.Options{})
	leased := make(chan error, 1)
	go func() {
		_, err := b.Lease(ctx, "idle", 1, 0) // blocks: nothing to lease
		leased <- err
	}()
	if err := b.Close(ctx); err != nil {
		panic(err)
	}
	fmt.Println(errors.Is(<-leased, queue.ErrClosed))
	fmt.Println(errors.Is(b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "idle"}), queue.ErrClosed))
	// Output:
	// true
	// true
}
