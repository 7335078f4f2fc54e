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
func BenchmarkCycle(b *testing.B) { cycle(b, memory.Options{}) }

// BenchmarkCycleHostDefaults is BenchmarkCycle with the host's default
// de-duplication window (memory.DefaultDedupWindow): each finished key
// is remembered, up to the bound, the oldest forgotten at each ack once
// it is reached.
func BenchmarkCycleHostDefaults(b *testing.B) {
	cycle(b, memory.Options{DedupWindow: memory.DefaultDedupWindow})
}

func cycle(b *testing.B, o memory.Options) {
	const batch = 64
	be := memory.New(o)
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

// BenchmarkBurnDown is the peers harness's shape on the backend alone:
// 50,000 tasks with generated ids are enqueued (not timed), then leased
// in batches of 16 and acked one by one. One op is one task's lease and
// ack, with 50,000 keys live at the start: the key index's delete at
// each ack is measured where the index is large.
func BenchmarkBurnDown(b *testing.B) {
	const (
		n     = 50_000
		batch = 16
	)
	ctx := context.Background()
	b.ReportAllocs()
	for done := 0; done < b.N; done += n {
		b.StopTimer()
		be := memory.New(memory.Options{Capacity: n})
		tasks := make([]*task.Task, n)
		for i := range tasks {
			tasks[i] = &task.Task{Kind: "k", Queue: "q"}
		}
		for i := 0; i < n; i += 5000 {
			if err := be.Enqueue(ctx, tasks[i:i+5000]...); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if err := leaseAckAll(ctx, be, min(n, b.N-done), batch); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = be.Close(ctx)
		b.StartTimer()
	}
}

// leaseAckAll leases n tasks of queue q in batches of up to batch and
// acks each (a function of its own, for a profiler to single out).
func leaseAckAll(ctx context.Context, be *memory.Backend, n, batch int) error {
	for left := n; left > 0; {
		ds, err := be.Lease(ctx, "q", min(batch, left), 0)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if err := be.Ack(ctx, d); err != nil {
				return err
			}
		}
		left -= len(ds)
	}
	return nil
}
