package queue_test

import (
	"context"
	"fmt"
	"time"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// The port as a worker pool uses it, on the memory backend: enqueue, lease,
// then settle each delivery (retry once, then ack). Applications do not
// call it: they enqueue through task.Enqueuer and handle in routes.
func Example() {
	ctx := context.Background()
	var b queue.Backend = memory.New(memory.Options{})
	defer b.Close(ctx)

	if err := b.Enqueue(ctx, &task.Task{Kind: "mail.send", Queue: "mail", Key: "order-7"}); err != nil {
		panic(err)
	}
	for {
		ds, err := b.Lease(ctx, "mail", 10, 30*time.Second)
		if err != nil {
			panic(err)
		}
		d := ds[0]
		fmt.Println("delivered", d.Task.Key, "attempt", d.Task.Attempt)
		if d.Task.Attempt == 1 {
			_ = b.Retry(ctx, d, time.Now()) // deliverable again at once
			continue
		}
		_ = b.Ack(ctx, d)
		break
	}
	st, _ := b.Stats(ctx, "mail")
	fmt.Println("ready", st.Ready, "in flight", st.InFlight)
	// Output:
	// delivered order-7 attempt 1
	// delivered order-7 attempt 2
	// ready 0 in flight 0
}
