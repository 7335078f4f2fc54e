package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// A durable queue on an embedded NATS server: enqueue a task, lease it,
// retry it once, then ack it. The store directory keeps unsettled tasks
// across restarts.
func Example() {
	dir, err := os.MkdirTemp("", "plba-nats-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	b, err := jetstream.Open(ctx, jetstream.Params{Config: jetstream.Config{
		Embedded: embedded.Config{StoreDir: dir}, // mode "embedded": no URL set
		Sync:     "always",                       // every task on disk before Enqueue returns
		AckSync:  true,                           // Ack waits for the server, so Stats below are exact
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close(ctx)

	err = b.Enqueue(ctx, &task.Task{Kind: "mail.send", Queue: "mail", Key: "order-42", Payload: []byte("hello")})
	fmt.Println("enqueued:", err == nil)
	// The same key within the duplicate window is dropped.
	_ = b.Enqueue(ctx, &task.Task{Kind: "mail.send", Queue: "mail", Key: "order-42", Payload: []byte("again")})

	ds, _ := b.Lease(ctx, "mail", 10, 30*time.Second)
	fmt.Println("leased:", len(ds), string(ds[0].Task.Payload), "attempt", ds[0].Task.Attempt)
	_ = b.Retry(ctx, ds[0], time.Now()) // a negative ack: delivered again at once

	ds, _ = b.Lease(ctx, "mail", 10, 30*time.Second)
	fmt.Println("leased:", len(ds), string(ds[0].Task.Payload), "attempt", ds[0].Task.Attempt)
	_ = b.Ack(ctx, ds[0])

	st, _ := b.Stats(ctx, "mail")
	fmt.Printf("ready %d, in flight %d, dead %d\n", st.Ready, st.InFlight, st.Dead)
	// Output:
	// enqueued: true
	// leased: 1 hello attempt 1
	// leased: 1 hello attempt 2
	// ready 0, in flight 0, dead 0
}
