package queuetest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/queue/queuetest"
	"github.com/plba/plba/platform/task"
)

// Faulty wraps any backend and injects errors (and delays) into chosen
// port methods: here the first Ack is answered with an error although it
// took effect (a reply lost on the way back), as a test of a caller's
// recovery would set it up. A backend's own tests run the conformance
// suite instead: queuetest.Run(t, features, newBackend).
func ExampleFaulty() {
	ctx := context.Background()
	mem := memory.New(memory.Options{})
	defer mem.Close(ctx)
	b := queuetest.NewFaulty(mem)
	lost := errors.New("connection reset")
	b.Inject(queuetest.OpAck, queuetest.Fault{Err: lost, Applied: true, Times: 1})

	_ = b.Enqueue(ctx, &task.Task{Kind: "k", Queue: "q"})
	ds, _ := b.Lease(ctx, "q", 1, 30*time.Second)
	err := b.Ack(ctx, ds[0])
	st, _ := b.Stats(ctx, "q")
	fmt.Println("ack error:", err)
	fmt.Println("still in flight:", st.InFlight)
	// Output:
	// ack error: connection reset
	// still in flight: 0
}
