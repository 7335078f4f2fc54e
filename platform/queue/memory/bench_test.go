package memory_test

import (
	"context"
	"testing"

	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// BenchmarkCycle is the backend alone, one goroutine: enqueue a batch of
// 64 tasks, lease them in one call, ack each. One op is one task's
// enqueue, lease and ack.
func BenchmarkCycle(b *testing.B) {
	const batch = 64
	be := memory.New(memory.Options{})
	defer be.Close(context.Background())
	ctx := context.Background()
	buf := make([]*task.Task, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		n := min(batch, b.N-done)
		for i := range n {
			buf[i] = &task.Task{Kind: "k", Queue: "q"}
		}
		if err := be.Enqueue(ctx, buf[:n]...); err != nil {
			b.Fatal(err)
		}
		ds, err := be.Lease(ctx, "q", n, 0)
		if err != nil || len(ds) != n {
			b.Fatalf("lease: %d, %v", len(ds), err)
		}
		for _, d := range ds {
			if err := be.Ack(ctx, d); err != nil {
				b.Fatal(err)
			}
		}
	}
}
